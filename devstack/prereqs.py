"""Checks the tools the local stack needs and says, in one message, how to get what's missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def firestore_emulator_dir(gcloud: str) -> Path | None:
    """The emulator lives in <sdk root>/platform/cloud-firestore-emulator."""
    sdk_root = Path(os.path.realpath(gcloud)).parent.parent
    candidates = [sdk_root / "platform" / "cloud-firestore-emulator"]
    if not candidates[0].exists():
        info = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if info.stdout.strip():
            candidates.append(Path(info.stdout.strip()) / "platform" / "cloud-firestore-emulator")
    for candidate in candidates:
        if (candidate / "cloud-firestore-emulator.jar").exists():
            return candidate
    return None


def missing() -> list[str]:
    problems: list[str] = []
    if shutil.which("java") is None:
        problems.append(
            "Java 11+ is required by the Firestore emulator: "
            "`sudo apt-get install -y default-jre-headless` (or any JDK 17)."
        )
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        problems.append(
            "The Google Cloud CLI is required for the Firestore emulator: install it "
            "(https://cloud.google.com/sdk/docs/install), then "
            "`gcloud components install cloud-firestore-emulator` "
            "(Debian/Ubuntu packages: google-cloud-cli google-cloud-cli-firestore-emulator)."
        )
    else:
        if firestore_emulator_dir(gcloud) is None:
            problems.append(
                "The Firestore emulator component is missing: "
                "`gcloud components install cloud-firestore-emulator` or "
                "`sudo apt-get install google-cloud-cli-firestore-emulator`."
            )
        firestore = firestore_emulator_dir(gcloud)
        if firestore is not None and not (firestore.parent / "pubsub-emulator").is_dir():
            problems.append(
                "The Pub/Sub emulator component is missing: "
                "`gcloud components install pubsub-emulator beta` or "
                "`sudo apt-get install google-cloud-cli-pubsub-emulator`."
            )
    return problems


CHROMIUM = Path("/usr/bin/chromium")


def ensure_chromium() -> Path:
    """Debian's chromium for the browser tests (tests/browser): installed with apt-get when it
    is missing and this runs as root; otherwise one message says how to get it."""
    if CHROMIUM.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is not None and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in ([apt, "update", "-q"], [apt, "install", "-y", "-q", "chromium"]):
            subprocess.run(argv, env=env, capture_output=True, timeout=900, check=False)
        if CHROMIUM.exists():
            return CHROMIUM
    raise RuntimeError(
        "The browser tests need Debian's chromium at /usr/bin/chromium: "
        "`sudo apt-get update && sudo apt-get install -y chromium`."
    )


def main() -> int:
    problems = missing()
    if problems:
        print("wagate: the local stack cannot start:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
