"""Manual test of the whatsmeow engine on a real phone (docs/engines.md, "Pairing a real phone"):
the four steps of runner.engines.manual_pairing through `WhatsmeowEngine`. It needs network
access to WhatsApp and a phone with WhatsApp; nothing is stored outside `--dir`, which holds the
plaintext device store (delete it afterwards).

    python -m runner.engines.whatsmeow.manual_pairing --dir /tmp/wa-manual --to +15550100 \
        [--pair-phone +15550199] [--logout]

In step 2 the second send is answered from the sent-id ledger (neonize cannot choose WhatsApp's
id), so the recipient still sees one message.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from runner.engines.manual_pairing import ManualTest, add_arguments, run_manual_test
from runner.engines.whatsmeow.engine import WhatsmeowEngine


async def main(args: argparse.Namespace) -> None:
    engine = WhatsmeowEngine(Path(args.dir), log_level=args.log_level)
    # Before reconnecting, let the last store change be captured (it polls every interval).
    test = ManualTest.from_args(
        args, wa_id_prefix="WGMANUAL", settle_s=engine.capture_interval_s * 2
    )
    await run_manual_test(engine, test)


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m runner.engines.whatsmeow.manual_pairing")
    parser.add_argument("--dir", required=True, help="where the plaintext device store goes")
    add_arguments(parser)
    parser.add_argument("--log-level", default="WARNING")
    try:
        asyncio.run(main(parser.parse_args()))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    cli()
