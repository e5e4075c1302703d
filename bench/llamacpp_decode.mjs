// llamacpp_decode.mjs times llama.cpp (node-llama-cpp 3.21.1, prebuilt CPU build, installed by
// `make conformance/llamacpp/node_modules`) on a GGUF the way `alignkit bench generate` times alignkit's
// engine, and prints the same JSON fields:
//
//   node bench/llamacpp_decode.mjs --model FILE.gguf [--prompt-len 128] [--new-tokens 128] [--runs 3] [--threads 2] [--name NAME]
//
// Per run: clear the sequence, prefill prompt-len random token ids (seeded, fixed across runs) up to the
// next-token pick, then decode new-tokens tokens one evaluation at a time, each fed the greedy
// (temperature 0) pick of the previous one. One warm-up run comes first when runs > 1; rates are
// tokens over the median times. The context uses an F32 KV cache and no flash attention, as the
// conformance tests do, so both engines do the same f32 arithmetic.
import {createRequire} from "node:module";
import {pathToFileURL} from "node:url";

function parseArgs(argv) {
    const args = {model: "", name: "", promptLen: 128, newTokens: 128, runs: 3, threads: 2, seed: 1};
    const ints = {"--prompt-len": "promptLen", "--new-tokens": "newTokens", "--runs": "runs", "--threads": "threads", "--seed": "seed"};
    for (let i = 0; i < argv.length; i++) {
        const flag = argv[i];
        const value = argv[i + 1];
        if (value === undefined) throw new Error(`${flag}: missing value`);
        if (flag === "--model") args.model = value;
        else if (flag === "--name") args.name = value;
        else if (flag in ints) {
            const n = Number(value);
            if (!Number.isInteger(n) || n < 1) throw new Error(`${flag}: ${JSON.stringify(value)} is not a positive integer`);
            args[ints[flag]] = n;
        } else throw new Error(`unknown argument ${JSON.stringify(flag)} (usage: --model FILE.gguf [--prompt-len P] [--new-tokens N] [--runs R] [--threads T] [--name NAME])`);
        i++;
    }
    if (args.model === "") throw new Error("--model is required");
    if (args.name === "") args.name = args.model;
    return args;
}

function median(xs) {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const require = createRequire(new URL("../conformance/llamacpp/package.json", import.meta.url));
    const {getLlama} = await import(pathToFileURL(require.resolve("node-llama-cpp")).href);
    const llama = await getLlama({gpu: false, build: "never", logLevel: "error", maxThreads: args.threads});
    const model = await llama.loadModel({modelPath: args.model, gpuLayers: 0});
    const embd = (model.fileInfo.tensorInfo ?? []).find((t) => t.name === "token_embd.weight");
    if (embd === undefined) throw new Error(`${args.model}: no token_embd.weight tensor`);
    const vocab = Number(embd.dimensions[1]);
    const ctxLen = args.promptLen + args.newTokens + 1;
    const context = await model.createContext({
        contextSize: ctxLen, batchSize: args.promptLen, sequences: 1,
        threads: {ideal: args.threads, min: args.threads},
        flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
    });
    const sequence = context.getSequence();
    // A small LCG keeps the prompt the same for every run and every invocation with the same seed.
    let state = BigInt(args.seed) * 6364136223846793005n + 1442695040888963407n;
    const prompt = [];
    for (let i = 0; i < args.promptLen; i++) {
        state = (state * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
        prompt.push(Number((state >> 33n) % BigInt(vocab - 3)) + 3);
    }
    const pick = {generateNext: {token: true, options: {temperature: 0}}};
    const total = args.runs > 1 ? args.runs + 1 : 1;
    const prefillS = [], decodeS = [];
    for (let run = 0; run < total; run++) {
        await sequence.clearHistory();
        let t = process.hrtime.bigint();
        const items = prompt.map((id, i) => (i === prompt.length - 1 ? [id, pick] : id));
        const out = await sequence.controlledEvaluate(items);
        let next = out[prompt.length - 1].next.token;
        const prefill = Number(process.hrtime.bigint() - t) / 1e9;
        t = process.hrtime.bigint();
        for (let i = 0; i < args.newTokens; i++) {
            const step = await sequence.controlledEvaluate([[next, pick]]);
            next = step[0].next.token;
        }
        const decode = Number(process.hrtime.bigint() - t) / 1e9;
        process.stderr.write(`${args.name} run ${run + 1}/${total}: prefill ${(args.promptLen / prefill).toFixed(0)} tokens/s, decode ${(args.newTokens / decode).toFixed(1)} tokens/s\n`);
        if (total > args.runs && run === 0) continue;
        prefillS.push(prefill);
        decodeS.push(decode);
    }
    const result = {
        kind: "generate", engine: "llama.cpp", model: args.name, prompt_len: args.promptLen, new_tokens: args.newTokens, runs: args.runs,
        prefill_s: prefillS, decode_s: decodeS,
        prefill_tokens_per_s: args.promptLen / median(prefillS), decode_tokens_per_s: args.newTokens / median(decodeS),
        peak_rss_mb: process.resourceUsage().maxRSS / 1024, // maxRSS is in KiB
        blas: "ggml (node-llama-cpp 3.21.1 prebuilt CPU)", threads: context.currentThreads,
    };
    process.stdout.write(JSON.stringify(result) + "\n");
    await context.dispose();
    await model.dispose();
    await llama.dispose();
}

main().catch((err) => {
    process.stderr.write(`llamacpp_decode.mjs: ${err?.message ?? err}\n`);
    process.exit(1);
});
