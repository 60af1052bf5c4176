"""python -m app: start CLLM Lab on http://127.0.0.1:7860 (AR on gsm8k-base beside Jacobi on gsm8k-cllm)."""
import argparse
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from app.chat import CSS  # noqa: E402
from app.models import Models, Settings  # noqa: E402
from app.ui import HEAD, build_demo  # noqa: E402
from model_utils.errors import UserError  # noqa: E402
from model_utils.loading import DEVICES, DTYPES, quiet_transformers  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 serves other machines too")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--base", default="gsm8k-base", help="left panel's model (hub name, path or embedded name)")
    p.add_argument("--cllm", default="gsm8k-cllm", help="right panel's model")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--dtype", choices=["auto", *DTYPES], default="auto")
    p.add_argument("--load-in-4bit", action="store_const", const=4, dest="bits")
    p.add_argument("--load-in-8bit", action="store_const", const=8, dest="bits")
    p.add_argument("--trust-remote-code", action="store_true", help="run model code from the hub (off by default)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_transformers()
    models = Models(Settings(args.base, args.cllm, args.device, args.dtype, args.bits, args.trust_remote_code))
    for name in (args.base, args.cllm):
        try:
            models.get(name)
        except UserError as e:
            print(f"warning: {e} The app starts anyway; pick another model in the UI.", file=sys.stderr)
    demo = build_demo(models)
    demo.queue().launch(server_name=args.host, server_port=args.port, ssr_mode=False, css=CSS, head=HEAD,
                        prevent_thread_lock=True, quiet=True)
    print(f"CLLM Lab ready on http://{args.host}:{args.port}", flush=True)
    demo.block_thread()


if __name__ == "__main__":
    main()
