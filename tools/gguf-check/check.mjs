import { gguf } from "@huggingface/gguf";
const path = process.argv[2];
const { metadata, tensorInfos } = await gguf(path, { allowLocalFile: true });
console.log(JSON.stringify({
  arch: metadata["general.architecture"], version: metadata.version, tensors: tensorInfos.length,
  first: tensorInfos.slice(0, 3).map(t => ({ name: t.name, shape: t.shape.map(Number), dtype: t.dtype })),
  ctx: metadata["llama.context_length"], heads_kv: metadata["llama.attention.head_count_kv"],
  tokens: metadata["tokenizer.ggml.tokens"]?.length, merges: metadata["tokenizer.ggml.merges"]?.length,
}));
