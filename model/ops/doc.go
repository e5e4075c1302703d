// Package ops holds alignkit's fused Gorgonia operations: each is a gorgonia.Op with a hand-written
// symbolic derivative (gorgonia.SDOp) whose backward pass is itself a fused op. They replace chains of
// stock Gorgonia ops (softmax, exp, transposes, slices, broadcasts) that dominate a training step's
// time, and they split their work over all cores.
//
// Every op works on float32 (the training graph) and float64 (finite-difference tests); the kernels
// are generic over both. Integer inputs (token ids, targets, positions, segment ids) are Int32
// tensors and are never differentiated.
//
// # Buffers and state
//
// An op keeps its output tensor and returns the same one on every run when the shape and dtype are
// unchanged, so a graph built once and re-run allocates no tensors in these ops (what is left per run
// is small: goroutine closures, and the routing ops' slices of length E or k). Values that a backward
// op needs from its forward op (softmax statistics, routing decisions, expert activations) live in
// the forward op's struct; the backward op holds a pointer to it and, through its graph inputs, runs
// after it. Ops therefore belong to one graph and one goroutine at a time, like the graph itself.
//
// Some backward passes produce several gradients at once (attention: dq, dk and dv; RMSNorm: dx and
// dw; the experts: dx, the routing weights and every expert matrix). The op that computes them
// returns the first and keeps the others; a small "part" op per other gradient takes the first
// gradient as its input (which orders it after the computation) and returns the kept tensor.
//
// Each op's node hash includes the op's own address, so Gorgonia never merges two op instances.
//
// # Memory
//
// Two ops exist to hold less: HeadLogProbs is the LM head and the token log-probs in one op that
// never holds the (N, V) logits or their gradient (it recomputes them a chunk of rows at a time in
// its backward pass; FrozenHeadLogProbs and FrozenHeadLoRALogProbs do the same for a frozen head,
// the latter with a LoRA term Scale·u·Bᵀ added chunk by chunk), and Checkpoint runs a segment (a decoder layer) on private sub-graphs shared
// by every layer, so that the graph keeps each layer's input and output rather than every
// activation (gradient checkpointing).
package ops

// Importing assume-no-moving-gc keeps Gorgonia's unsafe tricks from panicking at start on Go 1.26,
// also when this package's tests run without package model.
import _ "go4.org/unsafe/assume-no-moving-gc"
