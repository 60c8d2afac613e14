"""[generation]: sample completions shown during and after training so progress is visible."""

from __future__ import annotations

from ._field import Section, setting


class GenerationSection(Section):
    prompts: list[str] = setting(
        None,
        default_factory=list,
        label="Sample prompts",
        what="Prompts the model completes at every evaluation and at the end of training, so you can "
        "read how its answers change. Each is rendered exactly like a training row's prompt (the instruction "
        "template, or the chat template's user turn); in the instruction format, text after '### Input:' "
        "fills the input section. Empty: no samples.",
        up="More prompts show more behaviour but each evaluation takes longer.",
        down="Fewer prompts keep evaluation quick.",
        typical="2-5 short prompts that look like real use",
    )
    max_new_tokens: int = setting(
        64,
        label="Max new tokens",
        ge=1,
        le=32768,
        what="The longest completion generated for each sample prompt.",
        up="Longer samples show more, but take longer at each evaluation.",
        down="Shorter samples are quicker to generate and read.",
        typical="64-256",
    )
    do_sample: bool = setting(
        True,
        label="Sample",
        what="Draw tokens at random according to temperature/top_p/top_k; off means greedy decoding "
        "(always the single most likely token).",
        up="On: varied, more natural text.",
        down="Off: deterministic output, easiest to compare across evaluations.",
        typical="true",
    )
    temperature: float = setting(
        0.7,
        applies="generation.do_sample",
        label="Temperature",
        ge=0.0,
        le=5.0,
        what="How random sampling is: token probabilities are sharpened (below 1) or flattened (above "
        "1) before drawing. 0 means no randomness at all: the same as turning sampling off.",
        up="Higher values make output more diverse and creative, and more prone to nonsense.",
        down="Lower values make output focused and repeatable.",
        typical="0.1-1.0; 0.7 is a common middle",
    )
    top_p: float = setting(
        0.9,
        applies="generation.do_sample",
        label="Top-p",
        gt=0.0,
        le=1.0,
        what="Nucleus sampling: draw only from the smallest set of tokens whose probabilities add up to "
        "top_p.",
        up="Closer to 1 keeps more of the unlikely tail: more variety.",
        down="Lower values restrict choice to the most likely tokens: safer, blander text.",
        typical="0.9 (0.1-0.95 range)",
    )
    top_k: int = setting(
        50,
        applies="generation.do_sample",
        label="Top-k",
        ge=0,
        le=1_000_000,
        what="Draw only from the k most likely tokens; 0 disables the limit.",
        up="A larger k allows more varied choices.",
        down="A smaller k makes output more predictable; 1 is greedy.",
        typical="1-10 for focused output, 40-50 as a general default",
    )
    repetition_penalty: float = setting(
        1.0,
        label="Repetition penalty",
        gt=0.0,
        le=10.0,
        what="Divides the score of every token already in the prompt or the completion so far (CTRL-style "
        "penalty); 1.0 leaves the scores alone.",
        up="Above 1 the model repeats itself less; past about 1.3 it starts avoiding words it needs "
        "(names, the answer itself) and the text degrades.",
        down="Back to 1.0 for the model's own distribution; below 1 repetition is encouraged, rarely wanted.",
        typical="1.0 (off); 1.05-1.2 when a small model loops on the same phrase",
    )
    seed: int = setting(
        0,
        label="Seed",
        ge=0,
        le=2**32 - 1,
        what="Seed of the random draws when sampling, so the same prompt, settings and seed give the same "
        "completion again; set before each generation. Greedy decoding (sampling off) ignores it.",
        up="Any other value gives a different, equally likely draw; the size of the number means nothing.",
        down="Same as raising it: only whether two seeds are equal matters.",
        typical="0; keep one seed fixed while comparing models or settings, change it to see another draw",
    )
