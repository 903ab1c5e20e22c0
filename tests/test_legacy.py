"""The legacy remote-code path (MiniCPM-V 2.x / MiniCPM-o 2.6 style ``model.chat``), with a local repo whose
code is ours: refused without --trust-remote-code, used through ``chat(msgs=...)`` with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_omnilmm.records import read_records

from .conftest import write_jsonl_dataset

CONFIG_CODE = """
from transformers import PretrainedConfig

class EchoConfig(PretrainedConfig):
    model_type = "echo_chat_v2"
"""

MODEL_CODE = '''
import torch
from transformers import PreTrainedModel
from PIL import Image
from .configuration_echo import EchoConfig

class EchoChatModel(PreTrainedModel):
    """Answers with what it was shown, in order: enough to check the msgs the plugin builds."""
    config_class = EchoConfig

    def __init__(self, config):
        super().__init__(config)
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.post_init()

    def chat(self, image, msgs, tokenizer, sampling=False, max_new_tokens=8, num_beams=1, **kwargs):
        assert image is None and not sampling
        parts = []
        for item in msgs[-1]["content"]:
            parts.append(f"img{item.size[0]}" if isinstance(item, Image.Image) else "txt")
        return " ".join(parts)
'''


@pytest.fixture
def legacy_model(tmp_path: Path, tiny_model: Path) -> Path:
    from transformers import AutoTokenizer

    repo = tmp_path / "echo-repo"
    repo.mkdir()
    (repo / "configuration_echo.py").write_text(CONFIG_CODE)
    (repo / "modeling_echo.py").write_text(MODEL_CODE)
    (repo / "config.json").write_text(
        json.dumps(
            {
                "model_type": "echo_chat_v2",
                "architectures": ["EchoChatModel"],
                "auto_map": {
                    "AutoConfig": "configuration_echo.EchoConfig",
                    "AutoModel": "modeling_echo.EchoChatModel",
                },
            }
        )
    )
    import torch
    from safetensors.torch import save_file

    save_file({"scale": torch.ones(1)}, str(repo / "model.safetensors"))
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(repo)
    return repo


INTERLEAVED = """
import pytest

@pytest.mark.dataset("mixed", path="mixed.jsonl", metric="exact_match")
def test_mixed(sample, generate, score):
    score(generate(sample))
"""


def _interleaved_dataset(root: Path) -> None:
    write_jsonl_dataset(root, n=2)
    row = {
        "id": "m0",
        "content": [
            {"type": "text", "text": "compare"},
            {"type": "image", "image": "images/0.png"},
            {"type": "text", "text": "with"},
            {"type": "image", "image": "images/1.png"},
        ],
        "answers": ["x"],
    }
    (root / "mixed.jsonl").write_text(json.dumps(row) + "\n")


def test_remote_code_is_refused_without_the_flag(pytester: pytest.Pytester, legacy_model: Path) -> None:
    _interleaved_dataset(pytester.path)
    pytester.makepyfile(test_mixed=INTERLEAVED)
    result = pytester.runpytest_subprocess("--model_path", str(legacy_model), "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*echo_chat_v2*needs the repository's own Python code*--trust-remote-code*"])


@pytest.mark.parametrize(
    ("method", "expected"),
    [("chat", "img56 img64 txt txt"), ("interleave", "txt img56 txt img64")],
)
def test_legacy_chat_gets_images_in_method_order(
    pytester: pytest.Pytester, legacy_model: Path, method: str, expected: str
) -> None:
    _interleaved_dataset(pytester.path)
    pytester.makepyfile(test_mixed=INTERLEAVED)
    pytester.makeini("[pytest]\nfilterwarnings = ignore::pytest.PytestAssertRewriteWarning\n")
    result = pytester.runpytest(
        "--model_path", str(legacy_model), "--trust-remote-code", "--generate_method", method
    )
    result.assert_outcomes(passed=1)
    run = sorted((pytester.path / ".omnilmm-results").iterdir())[-1]
    (record,) = read_records(run / "records.jsonl")
    assert record.prediction == expected
