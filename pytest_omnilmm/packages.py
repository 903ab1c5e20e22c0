"""A package that a model's code or its processor imports, missing here: said in one line, with the pip
command, instead of an ImportError traceback on every sample (SmolVLM's processor needs ``num2words``;
transformers names what to install in its own ImportError messages)."""

from __future__ import annotations

import re

# "pip install X" in transformers' own messages ("... You can install it with pip: `pip install X`").
_PIP_INSTALL = re.compile(r"pip install ([A-Za-z0-9_.\-]+(?:\[[A-Za-z0-9_,.\-]+\])?)")
_QUOTED_NAME = re.compile(r"[`'\"]([A-Za-z0-9_.\-]+)[`'\"]")


def missing_package_line(exc: ImportError, source: str, what: str) -> str:
    """``source: its processor needs the Python package 'num2words', which is not installed here; pip
    install num2words`` from the ImportError that loading ``source``'s ``what`` raised."""
    message = " ".join(str(exc).split())
    pip = _PIP_INSTALL.search(message)
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        package = exc.name.split(".")[0]
    elif pip is not None:
        package = pip.group(1).split("[")[0]
    else:
        quoted = _QUOTED_NAME.search(message)
        package = quoted.group(1) if quoted else ""
    if not package:
        return f"{source}: loading its {what} failed on an import ({message[:300]}); install what it names"
    command = pip.group(1) if pip is not None else package
    return (
        f"{source}: its {what} needs the Python package {package!r}, which is not installed here; "
        f"pip install {command}"
    )
