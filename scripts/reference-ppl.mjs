// scripts/reference-ppl.mjs MODEL TEXT N_CTX N_CHUNKS: the perplexity of mainline llama.cpp on
// MODEL, computed as llama-perplexity does (BOS + the text's tokens; non-overlapping chunks of
// N_CTX whose first token is replaced by BOS; positions N_CTX/2 .. N_CTX-2 predict the next
// token; PPL = exp(mean NLL), ± as llama-perplexity), through the prebuilt CPU binaries of the
// npm package node-llama-cpp, with an f32 KV cache and flash attention off. A recording tool for
// tests/data/reference/ppl.tsv (scripts/record-reference.sh mainline), never run by the tests.
// node-llama-cpp is looked up from the current directory: run it where `npm install
// node-llama-cpp` was run. Prints the running PPL per chunk, the token counts, then
// "PPL <value> +/- <error>".
import {createRequire} from "node:module";
import fs from "node:fs";
import path from "node:path";

const [modelPath, textPath, nCtxArg, nChunksArg] = process.argv.slice(2);
if (!nChunksArg) {
    console.error("usage: node reference-ppl.mjs MODEL TEXT N_CTX N_CHUNKS");
    process.exit(2);
}
const require = createRequire(path.join(process.cwd(), "noop.js"));
const {getLlama} = await import(require.resolve("node-llama-cpp"));
const nCtx = Number(nCtxArg);
const llama = await getLlama({gpu: false, logLevel: "error"});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const bos = model.tokens.bos;
const tokens = [bos, ...model.tokenize(fs.readFileSync(textPath, "utf8"), false)];
const nChunks = Math.min(Number(nChunksArg), Math.floor(tokens.length / nCtx));
const context = await model.createContext({
    contextSize: nCtx, batchSize: nCtx, flashAttention: false, threads: 2, sequences: 1,
    experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
const sequence = context.getSequence();
const first = nCtx / 2;
let sum = 0, sum2 = 0, n = 0;
const running = [];
for (let c = 0; c < nChunks; c++) {
    await sequence.clearHistory();
    const chunk = tokens.slice(c * nCtx, (c + 1) * nCtx);
    chunk[0] = bos;
    const input = chunk.map((t, j) => (j >= first && j <= nCtx - 2)
        ? [t, {generateNext: {logits: true}}] : t);
    const result = await sequence.controlledEvaluate(input);
    for (let j = first; j < nCtx - 1; j++) {
        const logits = result[j].next.logits;
        let max = -Infinity, z = 0;
        for (const v of logits.values()) max = Math.max(max, v);
        for (const v of logits.values()) z += Math.exp(v - max);
        const nll = -(logits.get(chunk[j + 1]) - max - Math.log(z));
        sum += nll;
        sum2 += nll * nll;
        n++;
    }
    running.push(`[${c + 1}]${Math.exp(sum / n).toFixed(4)}`);
}
const mean = sum / n, ppl = Math.exp(mean);
console.log(running.join(","));
console.log(`tokens ${tokens.length} chunks ${nChunks} scored ${n}`);
console.log(`PPL ${ppl.toPrecision(10)} +/- ${(ppl * Math.sqrt((sum2 / n - mean * mean) / (n - 1))).toPrecision(7)}`);
