"""python -m app: start CLLM Lab on http://127.0.0.1:7860 (AR on smollm2-135m-instruct beside Jacobi on its CLLM)."""
import argparse
import ipaddress
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from app.inputs import MAX_UPLOAD_BYTES  # noqa: E402
from app.models import Models, Settings  # noqa: E402
from app.theme import CSS, HEAD  # noqa: E402
from app.ui import build_demo  # noqa: E402
from model_utils.cli import add_model_args, parser, run_cli, threads  # noqa: E402
from model_utils.errors import UserError  # noqa: E402


def host(text: str) -> str:
    """argparse type of --host: an IP address, or a name made of letters, digits, '-' and '.'."""
    looks_numeric = all(part.isdigit() for part in text.split("."))
    if looks_numeric or ":" in text:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None
    elif not text or not all(c.isalnum() or c in "-." for c in text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a host name or IP address")
    return text


def port(text: str) -> int:
    """argparse type of --port: 1..65535."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return int(text)


def is_loopback(host: str) -> bool:
    """Whether the app serves this machine only (then any model path or hub name may be typed)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser(__doc__, prog="python -m app")
    p.add_argument("--host", type=host, default="127.0.0.1", help="0.0.0.0 serves other machines too")
    p.add_argument("--port", type=port, default=7860)
    p.add_argument("--base", default="smollm2-135m-instruct",
                   help="left panel's model (hub name, path, GGUF file or embedded name)")
    p.add_argument("--cllm", default="smollm2-135m-cllm", help="right panel's model")
    p.add_argument("--models", nargs="+", default=[], metavar="M",
                   help="more models the lists offer (hub names or paths) beside the embedded ones")
    p.add_argument("--allow-any-model", action="store_true",
                   help="let users type any hub name or server path (always allowed on 127.0.0.1)")
    p.add_argument("--threads", type=threads,
                   help="CPU threads for decoding (default: 1 while every model is under 100M parameters, else "
                        "all cores)")
    add_model_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_cli(lambda: serve(args))


def serve(args: argparse.Namespace) -> None:
    models = Models(Settings(args.base, args.cllm, args.device, args.dtype, args.bits, args.trust_remote_code,
                             extra=tuple(args.models), free_models=is_loopback(args.host) or args.allow_any_model,
                             threads=args.threads))
    for name in (args.base, args.cllm):
        try:
            models.get(name)
        except UserError as e:
            print(f"warning: {e} The app starts anyway; pick another model in the UI.", file=sys.stderr)
    demo = build_demo(models)
    demo.queue().launch(server_name=args.host, server_port=args.port, ssr_mode=False, css=CSS, head=HEAD,
                        prevent_thread_lock=True, quiet=True, max_file_size=MAX_UPLOAD_BYTES)
    print(f"CLLM Lab ready on http://{args.host}:{args.port}", flush=True)
    demo.block_thread()


if __name__ == "__main__":
    sys.exit(main())
