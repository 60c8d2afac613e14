"""The playground: `python -m runner.playground RUN_DIR [--checkpoint NAME] [--max-memory BYTES]`.

Loads a run's model once and completes prompts on request, speaking JSON lines (one object per
line, UTF-8) on stdin and stdout. `tunedeck try` and the TUI's Try screen are its clients
(runner.playground_client); they never import torch themselves.

Requests (stdin):
    {"type": "generate", "id": "1", "prompt": "...", "model": "tuned" | "base" | "final" | "checkpoint-N",
     "generation": {"temperature": 0.7, "seed": 0, ...}}   any [generation] field; the rest from the run
    {"type": "cancel"}                                        stop the current completion, drop queued ones
    {"type": "quit"}                                          exit (end of input does the same)
Replies (stdout):
    {"type": "loading", "run", "checkpoint"}
    {"type": "ready", "run", "checkpoint", "checkpoints", "adapter", "base", "device", "load_s"}
    {"type": "start", "id", "model", "rendered"}              the prompt exactly as the model sees it
    {"type": "token", "id", "text"}                           streamed as each token is generated
    {"type": "done", "id", "completion", "tokens", "first_token_s", "seconds", "cancelled"}
    {"type": "error", "id"?, "code", "message", "fatal"}      fatal: the playground exits after it

Nothing hangs: a run without a saved model, a checkpoint that fails to load or a model larger than
the free memory is one fatal error line and exit code 2; a bad request is an error line and the
playground goes on. Read top to bottom: arguments, loading, the request loop, generation.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

from runner.exits import OK as EXIT_OK, USAGE as EXIT_FATAL
from runner.playground_checkpoints import CheckpointError, Saved, resolve_checkpoint, saved_models
from runner.rundir import RunDir

GIB = 2**30


class Fatal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Output:
    """JSON lines on stdout, one writer at a time; a closed pipe (client gone) ends the process."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def __call__(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"type": kind, **fields}, ensure_ascii=True)
        with self.lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (BrokenPipeError, ValueError):
                os._exit(EXIT_OK)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.playground")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--checkpoint", default="latest", help="final, latest, checkpoint-N or N (default latest)")
    parser.add_argument("--max-memory", type=int, default=None, metavar="BYTES",
                        help="memory the model may take (default: what is free on the device)")
    args = parser.parse_args(argv)
    emit = Output()
    run = RunDir(args.run_dir.resolve())
    what = run.name  # what failed to load, for the message
    try:
        if not run.exists():
            raise Fatal("not_a_run", f"{args.run_dir} is not a run directory (no config.toml)")
        try:
            saved = resolve_checkpoint(run, args.checkpoint)
        except CheckpointError as exc:
            raise Fatal(exc.code, str(exc)) from None
        what = f"{run.name}/{saved.name}"
        emit("loading", run=run.name, checkpoint=saved.name)
        started = time.monotonic()
        models = Models(run, saved, args.max_memory)
        emit("ready", run=run.name, checkpoint=saved.name, checkpoints=[s.name for s in saved_models(run)],
             adapter=saved.is_adapter, base=models.base_name, device=models.device,
             load_s=round(time.monotonic() - started, 3))
    except Fatal as exc:
        emit("error", code=exc.code, message=str(exc), fatal=True)
        return EXIT_FATAL
    except Exception as exc:  # noqa: BLE001 - anything else while loading is a load failure, said in one line
        emit("error", code="load_failed", message=f"cannot load {what}: {type(exc).__name__}: {exc}", fatal=True)
        return EXIT_FATAL
    serve(models, emit)
    return EXIT_OK


# --- loading ---------------------------------------------------------------------------------------
class Models:
    """The run's tuned model (loaded at start) and, on first request, its base model and other checkpoints.

    With a LoRA run every one of them is the same base weights: other checkpoints are extra adapters
    on the one model and the base is that model with its adapter switched off, so nothing is loaded twice.
    """

    def __init__(self, run: RunDir, saved: Saved, max_memory: int | None) -> None:
        import torch
        import transformers

        from runner import presets, train_model

        transformers.logging.set_verbosity_error()  # stderr is kept by the client for failures only
        transformers.utils.logging.disable_progress_bar()
        self.run, self.saved, self.max_memory = run, saved, max_memory
        loaded = presets.load(run.config)
        if loaded.config is None:
            raise Fatal("load_failed", f"{run.config}: " + "; ".join(p.message for p in loaded.errors))
        self.config = loaded.config
        self.cuda = torch.cuda.is_available()
        self.device = "cuda" if self.cuda else "cpu"
        self.adapter = saved.is_adapter
        m = self.config.model
        self.base_name = None if m.from_scratch else m.name_or_path
        self.tokenizer = self._tokenizer(saved.path, train_model)
        self._full: dict[str, Any] = {}  # full models by name ("base", "final", "checkpoint-N")
        self._adapters: set[str] = set()
        if self.adapter:
            from peft import PeftModel

            base = self._load_base()
            self.model = PeftModel.from_pretrained(base, str(saved.path), adapter_name=saved.name)
            self._adapters.add(saved.name)
        else:
            self.model = self._load_full(saved.path)
            self._full[saved.name] = self.model
        self.model.eval()

    def _tokenizer(self, path: Path, train_model):
        if (path / "tokenizer_config.json").is_file():
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=self.config.model.trust_remote_code)
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            return tokenizer
        return train_model.load_tokenizer(self.config)

    def _dtype(self):
        from runner.train_model import _torch_dtype

        return _torch_dtype(self.config.model.dtype)

    def _check_memory(self, what: str, needed: int | None) -> None:
        if needed is None:
            return
        free, where = free_memory(self.cuda)
        if self.max_memory is not None:
            free, where = self.max_memory, "allowed by --max-memory"
        if needed > free:
            raise Fatal("too_large", f"{what} needs about {size(needed)} and only {size(free)} is "
                                     f"{where}; free some memory, try on a larger machine, or train with "
                                     "quantization.load_in_4bit and LoRA")

    def _load_base(self):
        from transformers import AutoModelForCausalLM

        from runner.train_model import _quantization_config, resolve_name

        if self.base_name is None:
            raise Fatal("no_base", "this run trained from scratch (model.from_scratch): there is no base model to "
                                   "compare with; compare two checkpoints instead")
        self._check_memory(f"the base model {self.base_name}", base_model_bytes(self.config))
        m = self.config.model
        kwargs: dict[str, Any] = dict(dtype=self._dtype(), attn_implementation=m.attn_implementation,
                                      trust_remote_code=m.trust_remote_code)
        quant = _quantization_config(self.config, self.cuda)
        if quant is not None:
            kwargs.update(quantization_config=quant, device_map={"": 0})
        try:
            model = AutoModelForCausalLM.from_pretrained(resolve_name(m.name_or_path), **kwargs)
        except OSError as exc:
            raise Fatal("load_failed", f"cannot load the base model {m.name_or_path!r}: {exc}") from None
        return model if quant is not None else model.to(self.device)

    def _load_full(self, path: Path):
        from transformers import AutoModelForCausalLM

        self._check_memory(f"{self.run.name}/{path.name}", files_bytes(path))
        m = self.config.model
        try:
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=self._dtype(),
                                                         attn_implementation=m.attn_implementation,
                                                         trust_remote_code=m.trust_remote_code)
        except (OSError, ValueError) as exc:
            raise Fatal("load_failed", f"cannot load {path}: {exc}") from None
        return model.to(self.device).eval()

    def pick(self, which: str):
        """(model, context manager) that generates as `which`: tuned, base, final or checkpoint-N."""
        import contextlib

        if which in ("tuned", self.saved.name):
            if self.adapter:
                self.model.set_adapter(self.saved.name)
            return self.model, contextlib.nullcontext()
        if which == "base":
            if self.adapter:
                return self.model, self.model.disable_adapter()
            if "base" not in self._full:
                self._full["base"] = self._load_base().eval()
            return self._full["base"], contextlib.nullcontext()
        try:
            saved = resolve_checkpoint(self.run, which)
        except CheckpointError as exc:
            raise Fatal(exc.code, str(exc)) from None
        if self.adapter and saved.is_adapter:
            if saved.name not in self._adapters:
                self.model.load_adapter(str(saved.path), adapter_name=saved.name)
                self._adapters.add(saved.name)
            self.model.set_adapter(saved.name)
            return self.model, contextlib.nullcontext()
        if saved.name not in self._full:
            self._full[saved.name] = self._load_full(saved.path)
        return self._full[saved.name], contextlib.nullcontext()


def size(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / 2**20:.1f} MiB"


def free_memory(cuda: bool) -> tuple[int, str]:
    """(bytes free, where) on the device the model goes to."""
    if cuda:
        import torch

        return int(torch.cuda.mem_get_info()[0]), "free on the GPU"
    import psutil

    return int(psutil.virtual_memory().available), "free in RAM"


def files_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())


def base_model_bytes(config) -> int | None:
    """The base model's weights at the dtype it loads in, from the estimator's exact parameter count."""
    try:
        from runner.estimate import estimate

        est = estimate(config)
    except Exception:  # noqa: BLE001 - an architecture the estimator does not know: no check, the load decides
        return None
    q = config.quantization
    if q.load_in_4bit:
        per = 0.55
    elif q.load_in_8bit:
        per = 1.05
    else:
        dtype = config.model.dtype if config.model.dtype != "auto" else est.architecture.dtype
        per = {"float32": 4, "bfloat16": 2, "float16": 2}.get(dtype, 2)
    return int(est.params_total * per)


# --- the request loop ------------------------------------------------------------------------------
def serve(models: Models, emit: Output, stdin=None) -> None:
    """Read requests on a thread (so a cancel arrives mid-completion); complete them one by one."""
    requests: queue.Queue = queue.Queue()
    cancel = threading.Event()
    stdin = stdin or sys.stdin

    def read() -> None:
        for line in stdin:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                emit("error", code="bad_request", message=f"not a JSON object: {exc}", fatal=False)
                continue
            kind = request.get("type", "generate")
            if kind == "cancel":
                cancel.set()
                _drain(requests)
            elif kind == "quit":
                break
            else:
                requests.put(request)
        cancel.set()
        requests.put(None)  # end of input: finish

    threading.Thread(target=read, name="requests", daemon=True).start()
    _warm_up(models)
    while True:
        request = requests.get()
        if request is None:
            return
        cancel.clear()
        try:
            complete(models, request, emit, cancel)
        except Fatal as exc:
            emit("error", id=request.get("id"), code=exc.code, message=str(exc), fatal=False)
        except Exception as exc:  # noqa: BLE001 - one bad request must not end the session
            emit("error", id=request.get("id"), code="generation_failed",
                 message=f"{type(exc).__name__}: {exc}", fatal=False)


def _drain(q: queue.Queue) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


def _warm_up(models: Models) -> None:
    """One throw-away token, so the first real request does not pay for lazy initialisation."""
    import torch

    ids = models.tokenizer("warm up", return_tensors="pt")["input_ids"].to(models.model.device)
    with torch.no_grad():
        models.model.generate(input_ids=ids, max_new_tokens=1, do_sample=False,
                              pad_token_id=models.tokenizer.pad_token_id)


# --- generation ------------------------------------------------------------------------------------
def encode_prompt(config, tokenizer, prompt: str) -> tuple[str, dict]:
    """The prompt rendered and tokenized exactly as training renders its rows (runner.prompts, the one
    renderer): the instruction template with its input section, or the chat template's user turn."""
    from runner.prompts import ADD_SPECIAL_TOKENS, generation_prompt
    from runner.train_data import chat_template_for

    template = chat_template_for(config, tokenizer)  # None unless the data has chat rows
    text = generation_prompt(prompt, config.data, template)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=ADD_SPECIAL_TOKENS[config.data.format])
    return text, {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask")}


def settings(config, overrides: Any):
    """The run's [generation] with the request's values, validated by the schema."""
    from pydantic import ValidationError

    from runner.schema.generation import GenerationSection

    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise Fatal("bad_request", "generation must be an object of [generation] fields")
    data = config.generation.model_dump()
    data.update(overrides)
    try:
        return GenerationSection.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise Fatal("bad_request", f"generation.{key}: {first['msg']}") from None


def complete(models: Models, request: dict, emit: Output, cancel: threading.Event) -> None:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    from runner.generation_args import generate_kwargs, seeded

    rid = request.get("id")
    prompt = request.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise Fatal("bad_request", "prompt must be a non-empty string")
    g = settings(models.config, request.get("generation"))
    which = str(request.get("model") or "tuned")
    model, context = models.pick(which)
    text, inputs = encode_prompt(models.config, models.tokenizer, prompt)
    inputs = {k: v.to(model.device) for k, v in inputs.items()}
    emit("start", id=rid, model=which, rendered=text)
    streamer = TokenStream(models.tokenizer, lambda piece: emit("token", id=rid, text=piece))

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

    started = time.monotonic()
    streamer.started = started
    with torch.no_grad(), seeded(g.seed), context:
        model.generate(**inputs, **generate_kwargs(g), pad_token_id=models.tokenizer.pad_token_id,
                       streamer=streamer, stopping_criteria=StoppingCriteriaList([Cancelled()]))
    streamer.flush()
    first = streamer.first_at - started if streamer.first_at is not None else None
    emit("done", id=rid, model=which, completion=streamer.text, tokens=streamer.count,
         first_token_s=round(first, 4) if first is not None else None,
         seconds=round(time.monotonic() - started, 4), cancelled=cancel.is_set())


class TokenStream:
    """A transformers streamer that hands on each generated token's text as soon as it decodes.

    `generate` calls put() first with the prompt (skipped), then with each new token. Text is decoded
    from all tokens so far, so multi-byte characters split across tokens come out whole.
    """

    def __init__(self, tokenizer, send) -> None:
        self.tokenizer, self.send = tokenizer, send
        self.ids: list[int] = []
        self.sent = 0  # characters of the decoded text already sent
        self.prompt_seen = False
        self.count = 0
        self.started = time.monotonic()
        self.first_at: float | None = None

    @property
    def text(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=True)

    def put(self, value) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.ids.extend(int(t) for t in value.reshape(-1).tolist())
        self.count += value.numel()
        if self.first_at is None:
            self.first_at = time.monotonic()
        text = self.text
        if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            return
        self._send(text)

    def _send(self, text: str) -> None:
        if len(text) > self.sent:
            self.send(text[self.sent:])
            self.sent = len(text)

    def end(self) -> None:
        self.flush()

    def flush(self) -> None:
        self._send(self.text)


if __name__ == "__main__":
    sys.exit(main())
