"""`python -m service`: run the API under gunicorn, never Flask's development
server."""

import argparse
import os
import sys

from service.config import ENV_PREFIX, PORTS, WORKERS


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description="Serve sales forecasts from a model directory under gunicorn. "
                    f"Every option can also be set as an {ENV_PREFIX}* variable.",
    )
    parser.add_argument("--model-dir", help=f"model store ({ENV_PREFIX}MODEL_DIR)")
    parser.add_argument("--host", help=f"address to bind ({ENV_PREFIX}HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help=f"port ({ENV_PREFIX}PORT, 8080)")
    parser.add_argument("--workers", type=int,
                        help=f"processes ({ENV_PREFIX}WORKERS, 2)")
    args = parser.parse_args(argv)
    # gunicorn takes any integer here and fails with a traceback only when it binds.
    if args.port is not None and args.port not in PORTS:
        raise SystemExit(f"--port must be between {PORTS.start} and {PORTS[-1]}, got "
                         f"{args.port}.")
    if args.workers is not None and args.workers not in WORKERS:
        raise SystemExit(f"--workers must be between {WORKERS.start} and "
                         f"{WORKERS[-1]}, got {args.workers}.")

    # Empty is refused by the gunicorn configuration too, but in the name of the
    # variable this sets: say it in the name of the option that was given.
    for option, meaning in (("host", "the address to listen on"),
                            ("model_dir", "the model store folder")):
        value = getattr(args, option)
        if value is not None and not value.strip():
            raise SystemExit(f"--{option.replace('_', '-')} is empty, got {value!r}; "
                             f"give {meaning}, or leave the option out.")

    for option in ("model_dir", "host", "port", "workers"):
        value = getattr(args, option)
        if value is not None:
            os.environ[ENV_PREFIX + option.upper()] = str(value)

    # exec, so gunicorn's master is this process and receives the signals directly.
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn",
                              "--config", "python:service.gunicorn_conf"])


if __name__ == "__main__":
    main()
