"""`mlxk run`: one prompt (streamed, --no-stream, --json), stdin, or an interactive chat."""

from __future__ import annotations

import argparse

from mlxk.output.console import Output

NAME = "run"
HELP = "run a model: one prompt, a pipe, or an interactive chat"
DESCRIPTION = (
    "Run a chat or base model from the cache (or a local directory).\n"
    "With a prompt: answer it and exit. With '-': read stdin (any further words are the\n"
    "instruction, e.g. `cat notes.txt | mlxk run MODEL - \"summarize\"`). Without a prompt:\n"
    "an interactive chat (/help inside). Reasoning models show their thinking separated\n"
    "from the answer (--hide-reasoning hides it)."
)
EXAMPLE = ("Examples:\n"
           "  mlxk run SmolLM2-135M-Instruct \"What is the capital of France?\"\n"
           "  mlxk run org/model --temperature 0 --max-tokens 64 --json \"Hi\"\n"
           "  git diff | mlxk run org/model - \"write a commit message\"\n"
           "  mlxk run Qwen2-VL-2B-Instruct-4bit \"What is in this picture?\" --image photo.jpg\n"
           "  mlxk run org/model                       (interactive chat)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from mlxk.cli.options import (
        add_cache_flags,
        add_distributed_flags,
        add_model_arg,
        add_sampling_flags,
    )

    add_model_arg(p)
    p.add_argument("prompt", nargs="*", default=[],
                   help="the prompt; '-' reads stdin (further words: the instruction); none: chat")
    add_sampling_flags(p)
    add_cache_flags(p)
    s = p.add_argument_group("speculative decoding")
    s.add_argument("--draft-model", default=None, metavar="NAME",
                   help="a small model with the same tokenizer proposes tokens the model verifies "
                        "in one pass (same output, faster where verifying is cheap)")
    s.add_argument("--num-draft-tokens", type=int, default=3, metavar="K",
                   help="tokens the draft proposes per step (default 3)")
    s.add_argument("--prompt-lookup", type=int, default=None, metavar="N",
                   help="draft up to N tokens by finding the last tokens earlier in the prompt or "
                        "answer (no draft model; pays where the answer repeats its input, e.g. code "
                        "edits); not with --draft-model")
    g = p.add_argument_group("prompt and output")
    g.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="stop when the output contains TEXT (repeatable; TEXT is not printed)")
    g.add_argument("--system", default=None, help="system prompt")
    g.add_argument("--image", action="append", default=[], metavar="PATH",
                   help="send the image file PATH with the prompt (repeatable; vision models, "
                        "needs the 'vision' extra); in chat, /image PATH attaches one")
    g.add_argument("--no-chat-template", action="store_true",
                   help="send the prompt as raw text, without the model's chat template")
    g.add_argument("--no-stream", action="store_true", help="print the answer when it is complete")
    g.add_argument("--hide-reasoning", action="store_true",
                   help="do not show the thinking of reasoning models")
    g.add_argument("--json-schema", default=None, metavar="FILE",
                   help="constrain the answer to JSON valid against the schema in FILE "
                        "('-': stdin); with --json the envelope also carries 'parsed'")
    g.add_argument("--verbose", action="store_true",
                   help="print load time, prompt and generation tokens/s, peak memory (stderr)")
    add_distributed_flags(p)


def _prompt_text(args: argparse.Namespace, out: Output) -> str | None:
    """The single-shot prompt, or None for interactive chat."""
    from mlxk.operations.run import combine_stdin

    words = list(args.prompt)
    if "-" in words:
        return combine_stdin(words, out.read_stdin())
    if words:
        return " ".join(words)
    if not out.stdin.isatty():
        # `echo hi | mlxk run MODEL`: a pipe without a prompt is the prompt.
        return combine_stdin([], out.read_stdin())
    return None


def run(args: argparse.Namespace, out: Output) -> int:
    from mlxk.cli.options import (
        cache_options,
        distributed_requested,
        require_hosts_for_distributed_flags,
    )
    from mlxk.errors import UsageError

    require_hosts_for_distributed_flags(args)
    kv = cache_options(args)
    if args.draft_model and args.prompt_lookup is not None:
        raise UsageError("--draft-model and --prompt-lookup are two kinds of draft: choose one")
    prompt = _prompt_text(args, out) if not distributed_requested(args) else None
    if distributed_requested(args):
        if kv.active or args.adapter_path or args.draft_model or args.prompt_lookup is not None:
            raise UsageError("--max-kv-size, --kv-bits, --adapter-path, --draft-model and --prompt-lookup "
                             "do not work with --hosts/--hostfile yet")
        from mlxk.cli import distributed

        if args.image:
            from mlxk.errors import UsageError

            raise UsageError("--image is not supported with --hosts (vision models run on one machine)")

        words = list(args.prompt)
        text = None
        if words:
            from mlxk.operations.run import combine_stdin

            text = combine_stdin(words, out.read_stdin() if "-" in words else None)
        return distributed.run_cli(args, out, text)

    from mlxk.cli.options import run_options
    from mlxk.operations import run as ops

    options = run_options(args)
    if prompt is not None and not prompt.strip():
        raise UsageError("the prompt is empty")
    if prompt is None and out.json_mode:
        raise UsageError("--json needs a prompt (interactive chat has no JSON mode)")
    resolved = ops.resolve_runnable(args.model)
    if not resolved.exact and not out.json_mode:
        out.info(f"Using {resolved.name} ('{args.model}' matched it)")
    images = ops.read_images(resolved, list(args.image))
    lm = ops.load(resolved, kv, args.adapter_path)
    if args.draft_model:
        lm.draft = ops.load_draft(lm, args.draft_model, args.num_draft_tokens, kv)
    elif args.prompt_lookup is not None:
        lm.draft = ops.prompt_lookup(lm, args.prompt_lookup, kv)
    if args.verbose:
        out.info(f"Loaded {lm.name} in {lm.load_seconds:.2f}s")
    if prompt is None:
        from mlxk.cli.chat_ui import chat_loop

        return chat_loop(ops.ChatSession(lm, options), out, lm.name, args.hide_reasoning,
                         args.verbose, images=images)
    return _single(lm, prompt, options, args, out, images)


def _single(lm, prompt: str, options, args: argparse.Namespace, out: Output,
            images: list | None = None) -> int:
    from mlxk.cli.chat_ui import cut_notice_wanted, print_answer
    from mlxk.operations import run as ops

    session = ops.ChatSession(lm, options)
    turn = ops.Turn()
    chunks = session.ask(prompt, turn, images or ())
    if out.json_mode:
        for _ in chunks:
            pass
        out.result(ops.single_result(lm.name, prompt, turn, options, images=args.image))
        return 0
    print_answer(chunks, turn, out, lm.name, hide_reasoning=args.hide_reasoning,
                 no_stream=args.no_stream, verbose=args.verbose,
                 notice=cut_notice_wanted(args, out))
    return 0
