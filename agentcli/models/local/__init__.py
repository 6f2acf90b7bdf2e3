"""The embedded model: GGUF files run by llama.cpp in-process, offline, at zero price.

- `loader`: model files (`local/smollm2`, `local/PATH.gguf`), loading once per file, threads, freeing at exit.
- `gguf`: a GGUF file's header (context length, chat template) read without loading the model.
- `grammar`: JSON schema to a llama.cpp grammar, with the workarounds its converter needs.
- `chat`: requests in a local model's terms (chat templates, `response_format`, emulated tool calls).
- `gguf`: the GGUF header reader; `profile`: a local model's profile from its header.
- `model`: one grammar-constrained generation per call, deterministic decoding, prefix reuse.
"""
