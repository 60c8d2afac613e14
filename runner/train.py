"""The training entry point: `accelerate launch ... -m runner.train RUN_DIR [--resume]`.

Reads RUN_DIR/config.toml, trains a causal LM with the transformers Trainer, and records
everything in RUN_DIR (events.jsonl, status.json, checkpoints/, final/). The only module
(with runner/train_*.py) that imports torch, transformers, peft, accelerate and datasets.
Read top to bottom: setup, tokenizer, data, model, arguments, train, save.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import socket
import time
import traceback
from pathlib import Path

from runner.diagnose import RunError, diagnose_exception, traceback_tail
from runner.estimate import EstimateError, estimate, memory_signature
from runner.events import EventWriter, last_step
from runner.rundir import RunDir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.train")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    args = parser.parse_args(argv)

    run = RunDir(args.run_dir.resolve())
    rank = int(os.environ.get("RANK", "0"))
    is_main = rank == 0
    events = EventWriter(run.events, enabled=is_main)

    stop = StopFlag()
    stop.install()  # before the heavy imports: a stop during start-up is still graceful
    started = time.time()
    if is_main:
        from runner.liveness import RunLocked, hold

        try:
            hold(run, "trainer")  # held until this process exits: the run is alive while it is held
        except RunLocked as exc:  # two trainers must never write one run directory
            print(f"[tunedeck] not training: {exc}", file=sys.stderr, flush=True)
            return 3
        run.update_status(state="running", trainer_pid=os.getpid())
    try:
        return _train_recording_failure(run, events, stop, args.resume, is_main, started)
    finally:
        leave_process_group()


def leave_process_group() -> None:
    """Tear down torch.distributed before the interpreter exits. Left to interpreter shutdown, gloo's
    worker threads outlive Python and the process dies on SIGABRT ("terminate called without an active
    exception"), which the launcher reports as a failed run and answers by killing the other ranks."""
    dist = getattr(sys.modules.get("torch"), "distributed", None)  # only when training imported torch
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return
    try:
        dist.destroy_process_group()
    except Exception as exc:  # noqa: BLE001 - exiting anyway; say why the teardown failed
        print(f"[tunedeck] could not close the process group: {exc}", file=sys.stderr, flush=True)


def _train_recording_failure(run: RunDir, events: EventWriter, stop, resume: bool, is_main: bool,
                             started: float) -> int:
    try:
        return train(run, events, stop, resume=resume, is_main=is_main)
    except BaseException as exc:  # noqa: BLE001 - every failure must end as run_failed
        if is_main and diagnose_exception(exc).reason == "disk_full":
            # The half-written checkpoint took the last bytes: drop it (resume uses the last complete
            # one), so the failure itself can still be recorded.
            from runner.rundir import remove_incomplete_checkpoints

            remove_incomplete_checkpoints(run)
        diagnosis = diagnose_exception(exc, str(run.path), _run_config(run), _visible_gpus())
        if not isinstance(exc, RunError):
            traceback.print_exc()
        print(f"[tunedeck] run failed ({diagnosis.reason}): {diagnosis.message}\n"
              f"[tunedeck] suggestion: {diagnosis.suggestion}", file=sys.stderr, flush=True)
        if is_main:
            try:
                events.emit("run_failed", last_step(run.events), reason=diagnosis.reason, message=diagnosis.message,
                            suggestion=diagnosis.suggestion, traceback_tail=traceback_tail(exc),
                            elapsed_s=time.time() - started)
                run.update_status(state="failed", reason=diagnosis.reason, message=diagnosis.message,
                                  suggestion=diagnosis.suggestion)
            except OSError as write_error:  # still no room: the supervisor records it from the log
                print(f"[tunedeck] could not record the failure: {write_error}", file=sys.stderr, flush=True)
        return 1


def _run_config(run: RunDir):
    """The run's config, for an out-of-memory suggestion sized to it; None when it cannot be read."""
    from runner import presets

    return presets.load(run.config).config


def _visible_gpus() -> int:
    torch = sys.modules.get("torch")  # only ask when training got as far as importing it
    return torch.cuda.device_count() if torch is not None and torch.cuda.is_available() else 0


class StopFlag:
    """Set by SIGTERM/SIGINT/SIGHUP; the trainer checks it after every optimizer step."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame) -> None:
        self.signal_name = signal.Signals(signum).name


def train(run: RunDir, events: EventWriter, stop, *, resume: bool, is_main: bool) -> int:
    # --- setup -------------------------------------------------------------------------------
    import torch
    import transformers
    from transformers import EarlyStoppingCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from runner import presets, train_data, train_model
    from runner.derived import derive
    from runner.trackers import require_tracker
    from runner.training_args import training_arguments
    from runner.train_callbacks import EventCallback, SampleCallback, gpu_memory
    from runner.train_trainer import TunedeckTrainer

    transformers.logging.set_verbosity_warning()
    transformers.utils.logging.disable_progress_bar()
    loaded = presets.require(run.config)
    config = loaded.config
    digest = presets.config_digest(config)
    t, d = config.training, config.data
    cuda = torch.cuda.is_available()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    transformers.set_seed(t.seed)

    resume_from = None
    if resume:
        resume_from = run.latest_checkpoint()
        if resume_from is None:
            raise RunError(f"nothing to resume: no checkpoint in {run.checkpoints}")

    # --- tokenizer and data ------------------------------------------------------------------
    tokenizer = train_model.load_tokenizer(config)
    has_eval = bool(d.eval_path) or d.eval_split > 0
    eval_strategy = t.eval_strategy if has_eval else "no"
    require_tracker(t.report_to)
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run.path / "tensorboard")  # tracker logs stay in the run dir
    args = TrainingArguments(**training_arguments(config, output_dir=str(run.checkpoints), run_name=run.name,
                                                  cuda=cuda, has_eval=has_eval))
    with args.main_process_first(desc="tokenizing the dataset"):
        data = train_data.prepare(config, tokenizer)
    for message in data.warnings:
        events.emit("warning", 0, message=message, code="data")
    if t.eval_strategy != "no" and not has_eval:
        events.emit("warning", 0, code="no_eval_data",
                    message="training.eval_strategy is set but there is no eval data (data.eval_path / data.eval_split)")

    # --- model -------------------------------------------------------------------------------
    model, info = train_model.load_model(config, tokenizer, cuda=cuda, device_index=local_rank)
    for message in info.warnings:
        events.emit("warning", 0, message=message, code="model")
    if is_main:
        print(f"parameters: {info.params_trainable:,} trainable of {info.params_total:,} "
              f"({info.trainable_percent:.2f}%)", flush=True)

    # --- trainer -----------------------------------------------------------------------------
    event_callback = EventCallback(events, digest, stop, world_size, config_toml=presets.dumps(config, with_help=False))
    samples = Sampler(config, tokenizer, events, enabled=is_main and config.launch.strategy in ("none", "ddp"))
    callbacks = [event_callback, SampleCallback(samples)]
    if t.early_stopping_patience and eval_strategy != "no":
        callbacks.append(EarlyStoppingCallback(t.early_stopping_patience, t.early_stopping_threshold))
    trainer = TunedeckTrainer(  # the Trainer, resuming tied output heads without a false "missing key"
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.eval if eval_strategy != "no" else None,
        processing_class=tokenizer,
        data_collator=train_data.collator_for(config, tokenizer),
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # replaced by EventCallback's one-line summaries
    trainer.remove_callback(ProgressCallback)

    # Rows after packing are what the sampler splits across processes.
    total_steps = derive(config, num_examples=len(data.train), world=world_size).total_steps
    start_step = _checkpoint_step(resume_from) if resume_from else 0
    events.emit(
        "run_started", start_step,
        config_digest=digest,
        preset=run.read_status().get("preset"),
        resumed_from=resume_from.name if resume_from else None,
        start_step=start_step,
        total_steps=total_steps,
        num_train_examples=data.num_train_examples,
        num_eval_examples=data.num_eval_examples,
        packed_rows=len(data.train) if data.packed else None,
        world_size=world_size,
        effective_batch_size=t.per_device_train_batch_size * t.gradient_accumulation_steps * world_size,
        params_total=info.params_total,
        params_trainable=info.params_trainable,
        trainable_percent=info.trainable_percent,
        estimated_memory=_estimate(config),
        memory_signature=memory_signature(config),
        device=_device_info(cuda, world_size),
    )
    # Every rank says it is up and where (multi-node runs show which nodes took part), after rank 0's
    # run_started: the barrier keeps run_started the first event of each launch.
    if world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
    EventWriter(run.events).emit("rank_ready", start_step, rank=int(os.environ.get("RANK", "0")), local_rank=local_rank,
                                 world_size=world_size, host=socket.gethostname(), node=os.environ.get("SLURMD_NODENAME"))
    if is_main:
        print(f"{'resuming from ' + resume_from.name if resume_from else 'starting'}: {total_steps} steps, "
              f"{data.num_train_examples} examples, world size {world_size}", flush=True)

    # --- train -------------------------------------------------------------------------------
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    step = trainer.state.global_step
    if stop.requested:
        checkpoint = run.latest_checkpoint()
        reason = f"stop requested ({stop.signal_name})"
        if is_main:  # one line in output.log, not one per rank
            print(f"[tunedeck] stopped at step {step}: {reason}; checkpoint {checkpoint}", flush=True)
            events.emit("run_stopped", step, reason=reason, checkpoint=str(checkpoint) if checkpoint else None,
                        elapsed_s=time.time() - t0)
            run.update_status(state="stopped", reason=reason, message=f"stopped at step {step}")
        return 0

    # --- save --------------------------------------------------------------------------------
    trainer.save_model(str(run.final))  # adapter only for LoRA, the full model otherwise
    merged_path = None
    if is_main:
        tokenizer.save_pretrained(str(run.final))
        if config.lora.enabled and config.lora.merge_after_training:
            merged_path = run.final / "merged"
            trainer.model.merge_and_unload().save_pretrained(str(merged_path))
            tokenizer.save_pretrained(str(merged_path))
        samples(trainer.model, step, "end")
        early = trainer.state.max_steps > step
        events.emit("run_finished", step, reason="early_stopping" if early else "completed",
                    final_path=str(run.final), merged_path=str(merged_path) if merged_path else None,
                    train_loss=result.training_loss if math.isfinite(result.training_loss) else None,
                    total_steps=trainer.state.max_steps, elapsed_s=time.time() - t0, **gpu_memory())
        run.update_status(state="finished", reason="completed", message=f"finished at step {step}")
        print(f"[tunedeck] finished at step {step}; saved to {run.final}", flush=True)
    return 0


class Sampler:
    """Completes generation.prompts with the current model and writes `sample` events."""

    def __init__(self, config, tokenizer, events: EventWriter, enabled: bool):
        self.config, self.tokenizer, self.events = config, tokenizer, events
        self.enabled = enabled and bool(config.generation.prompts)
        self.template = None  # the chat template, resolved on first use

    def render(self, prompt: str) -> str:
        """The prompt as training rows render theirs (runner.prompts): instruction template with its
        input section, or the chat template's user turn and assistant header."""
        from runner.prompts import generation_prompt
        from runner.train_data import chat_template_for

        if self.template is None and self.config.data.format == "chat":
            self.template = chat_template_for(self.config, self.tokenizer)
        return generation_prompt(prompt, self.config.data, self.template)

    def __call__(self, model, step: int, when: str) -> None:
        if not self.enabled or model is None:
            return
        import torch

        from runner.generation_args import generate_kwargs, seeded
        from runner.prompts import ADD_SPECIAL_TOKENS

        g = self.config.generation
        model = getattr(model, "module", model)  # unwrap DDP
        was_training = model.training
        model.eval()
        try:
            for prompt in g.prompts:
                text = self.render(prompt)
                inputs = self.tokenizer(text, return_tensors="pt",
                                        add_special_tokens=ADD_SPECIAL_TOKENS[self.config.data.format])
                inputs = {k: v.to(model.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
                with torch.no_grad(), seeded(g.seed):
                    out = model.generate(**inputs, **generate_kwargs(g), pad_token_id=self.tokenizer.pad_token_id)
                completion = self.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
                self.events.emit("sample", step, prompt=prompt, completion=completion, when=when,
                                 max_new_tokens=g.max_new_tokens, do_sample=g.do_sample, temperature=g.temperature,
                                 top_p=g.top_p, top_k=g.top_k)
                print(f"sample ({when}, step {step}): {prompt!r} -> {completion!r}", flush=True)
        finally:
            model.train(was_training)


def _checkpoint_step(path: Path) -> int:
    return int(path.name.rsplit("-", 1)[-1])


def _estimate(config) -> dict | None:
    """The estimate recorded in run_started; None for a model the estimator cannot size offline."""
    try:
        return estimate(config).to_dict()
    except EstimateError:
        return None


def _device_info(cuda: bool, world_size: int) -> dict:
    import peft
    import torch
    import transformers

    info = {"type": "cuda" if cuda else "cpu", "count": torch.cuda.device_count() if cuda else 0,
            "world_size": world_size, "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "cuda": torch.version.cuda}
    info["name"] = torch.cuda.get_device_name() if cuda else "cpu"
    return info


if __name__ == "__main__":
    sys.exit(main())
