"""Models: everything that talks to an LLM, and nothing else.

- `types`: the values passed between client, backends, budget and replay (`ModelRequest`,
  `ModelResponse`, `LLMResult`, `Usage`, `Price`, `CallRecord`) and the narrow `ModelBackend` interface.
- `client`: `LLMClient`, provider-independent: retries, fallbacks, structured output and re-asks,
  the pre-call guard, observers, totals.
- `profile`: what a model can do, as data (`ModelProfile`); `routing`: which backend serves a model
  name.
- `litellm`: the only importer of litellm (lazily): hosted providers, error classification.
- `local/`: the embedded llama.cpp model (`local/...`).
- `fakes`: scripted and function models shipped in the package (`test/...`).
- `names`: what a model's name tells without a backend (its backend kind, static profile) and the
  gate that keeps tests off real models (below the backends, so none imports routing back).
- `openai_http`: OpenAI-compatible servers over plain HTTP (no litellm import); `modelinfo`: what
  both provider backends read the same way (price and profile from litellm's model info, cached
  tokens, tool-call arguments, a server's reachability); `cache`: what of a request a provider's
  prefix cache could serve.
- `stream`: streamed answers put back together whole (server-sent events, the cut-off error).
- `calllog`: the per-request JSON log; `tokens`: offline token counting.
- `preflight`: what would fail a run's first call (a key, a server, a model name, the task's length),
  found before the run exists.

Nothing outside this package decides anything from a model's name.
"""
