// logprobs.mjs runs llama.cpp (node-llama-cpp 3.21.1, prebuilt CPU build) on a GGUF and prints, as JSON,
// the full next-token log-softmax after every input position, and optionally a greedy continuation.
//
//   node logprobs.mjs --model FILE.gguf [--lora ADAPTER.gguf] --tokens 1,403,407 [--tokens 1,5,6 ...] [--greedy N]
//
// Output: one JSON line per --tokens list, in order:
//   {"logprobs": [[V floats after token 0], [V floats after tokens 0..1], ...], "greedy": [ids...]}
// Several lists share one process and one loaded model (node and llama.cpp start in about a second, a
// tiny model evaluates in milliseconds); each list starts from an empty KV cache, so the results are
// the same as one run per list. --greedy N applies to every list.
//
// The context uses an F32 KV cache and no flash attention: llama.cpp's defaults (an F16 cache with flash
// attention) move log-probs by about 1e-2, which would hide real exporter bugs in a 1e-4 comparison.
// Token ids are fed as they are (no tokenizer, no BOS added), so the caller controls the exact sequence.
// --lora applies a GGUF LoRA adapter (general.type "adapter") at scale 1, unmerged, as llama.cpp's --lora.
import {getLlama} from "node-llama-cpp";

function parseArgs(argv) {
    const args = {model: "", lora: "", sequences: [], greedy: 0};
    for (let i = 0; i < argv.length; i++) {
        const flag = argv[i];
        const value = argv[i + 1];
        if (flag === "--model" && value !== undefined) {
            args.model = value;
            i++;
        } else if (flag === "--lora" && value !== undefined) {
            args.lora = value;
            i++;
        } else if (flag === "--tokens" && value !== undefined) {
            const tokens = value.split(",").filter((s) => s.trim() !== "").map((s) => {
                const n = Number(s);
                if (!Number.isInteger(n) || n < 0)
                    throw new Error(`--tokens: ${JSON.stringify(s)} is not a token id`);
                return n;
            });
            if (tokens.length === 0) throw new Error(`--tokens ${args.sequences.length + 1}: needs at least one token id`);
            args.sequences.push(tokens);
            i++;
        } else if (flag === "--greedy" && value !== undefined) {
            args.greedy = Number(value);
            if (!Number.isInteger(args.greedy) || args.greedy < 0)
                throw new Error(`--greedy: ${JSON.stringify(value)} is not a non-negative integer`);
            i++;
        } else {
            throw new Error(`unknown or incomplete argument ${JSON.stringify(flag)} (usage: --model FILE.gguf [--lora ADAPTER.gguf] --tokens 1,2,3 [--tokens 4,5 ...] [--greedy N])`);
        }
    }
    if (args.model === "") throw new Error("--model is required");
    if (args.sequences.length === 0) throw new Error("--tokens is required");
    return args;
}

// logSoftmaxRow turns node-llama-cpp's probability map into a dense log-prob vector over the vocabulary.
// A token missing from the map has probability 0 (log -Infinity, printed as null by JSON).
function logSoftmaxRow(probabilities, vocabSize) {
    const row = new Array(vocabSize).fill(-Infinity);
    for (const [id, p] of probabilities) row[id] = Math.log(p);
    return row;
}

// evaluate feeds tokens into an empty sequence and returns the log-softmax after each position and the
// greedy continuation of the given length.
async function evaluate(sequence, tokens, greedyLength, vocabSize) {
    const generateNext = {probabilities: true, token: true, options: {temperature: 0}};
    const out = await sequence.controlledEvaluate(tokens.map((id) => [id, {generateNext}]));
    const logprobs = [];
    for (let i = 0; i < tokens.length; i++) {
        const next = out[i]?.next;
        if (next?.probabilities === undefined) throw new Error(`no probabilities returned after position ${i}`);
        logprobs.push(logSoftmaxRow(next.probabilities, vocabSize));
    }
    // Greedy continuation: temperature 0 picks the argmax; each pick is fed back as the next input.
    const greedy = [];
    let next = out[tokens.length - 1].next.token;
    for (let i = 0; i < greedyLength; i++) {
        greedy.push(next);
        if (i === greedyLength - 1) break;
        const step = await sequence.controlledEvaluate([[next, {generateNext: {token: true, options: {temperature: 0}}}]]);
        next = step[0].next.token;
    }
    return {logprobs, greedy};
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
    const model = await llama.loadModel({modelPath: args.model, gpuLayers: 0});
    // The vocabulary is the token embedding's row count (ggml dims are [D, V]).
    const embd = (model.fileInfo.tensorInfo ?? []).find((t) => t.name === "token_embd.weight");
    if (embd === undefined) throw new Error(`${args.model}: no token_embd.weight tensor`);
    const vocabSize = Number(embd.dimensions[1]);
    for (const [n, tokens] of args.sequences.entries()) {
        for (const id of tokens) {
            if (id >= vocabSize) throw new Error(`--tokens ${n + 1}: id ${id} is outside the vocabulary (${vocabSize})`);
        }
    }
    const needed = Math.max(...args.sequences.map((tokens) => tokens.length)) + args.greedy + 1;
    const context = await model.createContext({
        contextSize: Math.max(needed, 32),
        batchSize: Math.max(needed, 32),
        sequences: 1,
        // One thread: these models are tiny, and ggml's worker threads spin-wait, which on a busy
        // machine turns a millisecond step into a second. Results do not depend on the thread count.
        threads: 1,
        flashAttention: false,
        experimentalKvCacheKeyType: "F32",
        experimentalKvCacheValueType: "F32",
        ...(args.lora === "" ? {} : {lora: {adapters: [{filePath: args.lora, scale: 1}]}}),
    });
    const sequence = context.getSequence();
    for (const tokens of args.sequences) {
        await sequence.clearHistory();
        const result = await evaluate(sequence, tokens, args.greedy, vocabSize);
        process.stdout.write(JSON.stringify(result) + "\n");
    }
    await context.dispose();
    await model.dispose();
    await llama.dispose();
}

main().catch((err) => {
    process.stderr.write(`logprobs.mjs: ${err?.message ?? err}\n`);
    process.exit(1);
});
