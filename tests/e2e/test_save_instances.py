"""The models users already have, saved and loaded in a fresh process and compared with eager.

Written as users write them: instances (``model = Net(5)``, ``nn.Sequential(...)``, transformers
models from small configs with random weights), a tokenizer built from a vocabulary file the test
writes, third-party objects inside transform classes. One subprocess saves every case and one
loads them (``tests/e2e/roundtrip_harness.py``); the user's script is deleted before loading.
torchvision has no build for the CPU torch these tests run with, so the vision rows use
transformers' ViT and ResNet built from configs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.roundtrip_harness import (
    expected_outputs,
    last_line_of_ipython_cells,
    load_in_subprocess,
    run_python,
    save_errors_in_subprocess,
    save_in_subprocess,
)

pytest.importorskip("transformers")

SCRIPT = """
import os

import torch
import transformers
from torch import nn
from transformers import (
    AutoModel,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    BertTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    ResNetConfig,
    ViTConfig,
)

from padlc import batch, same, transform, unbatch

torch.manual_seed(0)

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "dog"]
# the vocabulary file a user has; it is deleted with this script before loading, except the one
# written beside the artifacts (read again by a constructor that is given its path)
with open("vocab.txt", "w") as f:
    f.write("\\n".join(WORDS))
KEPT_VOCAB = os.path.join(os.environ["PADLC_TEST_OUT"], "vocab.txt")
with open(KEPT_VOCAB, "w") as f:
    f.write("\\n".join(WORDS))

tokenizer = BertTokenizer(vocab="vocab.txt")

@transform
def to_tensor(x):
    return torch.tensor(x, dtype=torch.float32)

@transform
def encode(text):
    return torch.tensor(tokenizer(text)["input_ids"])

# nn.Sequential instance
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
sequential = to_tensor >> batch >> model >> unbatch

# a user class whose __init__ does not store its argument
class Net(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.fc = nn.Linear(4, h)
    def forward(self, x):
        return torch.tanh(self.fc(x))

net = Net(5)
not_stored = to_tensor >> batch >> transform(net) >> unbatch

# a factory, an inline container, an assignment inside the function returning the pipeline
def make_model():
    return Net(3)

made = make_model()
factory = to_tensor >> batch >> transform(made) >> unbatch
inline = to_tensor >> batch >> transform(nn.Sequential(nn.Linear(4, 2), nn.Sigmoid())) >> unbatch

def build_pipeline():
    width = 6
    local_net = Net(width)
    return to_tensor >> batch >> transform(local_net) >> unbatch

in_function = build_pipeline()

# vision models from configs (the torchvision-style instance rows)
vit = AutoModel.from_config(ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=32))
resnet = AutoModel.from_config(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]))
vit.eval(), resnet.eval()

@transform
def image(seed):
    return torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(seed))

vision_vit = image >> batch >> vit >> same.pooler_output >> unbatch
vision_resnet = image >> batch >> resnet >> same.pooler_output >> unbatch

# a tokenizer attribute set in __init__ (no __eq__: compared by what is saved of it)
@transform
class Tokenize:
    def __init__(self, vocab):
        self.tokenizer = BertTokenizer(vocab=vocab)
    def __call__(self, text):
        return self.tokenizer(text)["input_ids"]

tokenizer_attribute = Tokenize(KEPT_VOCAB)

# the tokenizer itself given to a transform: saved into the artifact by its serializer
@transform
class Encoder:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
    def __call__(self, text):
        return torch.tensor(self.tokenizer(text)["input_ids"])

# transformers models: wrapped class, module proxy, instance
config = BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=32)
bert_class = encode >> batch >> transform(BertModel)(config) >> same.last_hidden_state >> unbatch
bert_proxy = encode >> batch >> transform(transformers).BertModel(config) >> same.pooler_output >> unbatch
bert_instance = encode >> batch >> transform(BertModel(config)) >> same.last_hidden_state >> unbatch
for p in (bert_class, bert_proxy, bert_instance):
    p.pd_layers[0].eval()

# a model loaded from a pretrained folder (deleted with this script): rebuilt from its config
BertModel(config).save_pretrained("pretrained")
pretrained_model = BertModel.from_pretrained("pretrained").eval()
pretrained = encode >> batch >> pretrained_model >> same.pooler_output >> unbatch

# a BERT-like classifier and a GPT-2-like scorer, as users hold them
classifier_model = BertForSequenceClassification(
    BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=32, num_labels=3)
).eval()
classifier = Encoder(tokenizer) >> batch >> classifier_model >> same.logits >> unbatch >> same.softmax(-1)

gpt = GPT2LMHeadModel(GPT2Config(vocab_size=len(WORDS), n_embd=16, n_layer=1, n_head=2, n_positions=32,
                                 bos_token_id=2, eos_token_id=3)).eval()

@transform
def score(logits_and_ids):
    logits, ids = logits_and_ids
    logp = torch.log_softmax(logits[:-1], -1)
    return logp.gather(-1, ids[1:, None]).sum()

scorer = encode >> batch >> (gpt >> same.logits) + transform(lambda ids: ids) >> unbatch >> score

# an LSTM
lstm = nn.LSTM(4, 8, batch_first=True)

@transform
def sequence(n):
    return torch.linspace(0, 1, 4 * n).reshape(n, 4)

recurrent = sequence >> batch >> lstm >> same[0] >> unbatch >> same[-1]

# BatchNorm momentum changed inside a numbered submodule
@transform
class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))
    def forward(self, x):
        return self.features(x).mean((-1, -2))

backbone = Backbone().eval()
backbone.features[0][1].momentum = 0.01
backbone.features[0][1].running_mean += 0.5
batchnorm = image >> batch >> backbone >> unbatch

CASES = {
    "sequential": (sequential, [[1.0, 2.0, 3.0, 4.0]]),
    "not_stored": (not_stored, [[1.0, -1.0, 0.5, 2.0]]),
    "factory": (factory, [[1.0, -1.0, 0.5, 2.0]]),
    "inline": (inline, [[1.0, -1.0, 0.5, 2.0]]),
    "in_function": (in_function, [[1.0, -1.0, 0.5, 2.0]]),
    "vision_vit": (vision_vit, [0, 1]),
    "vision_resnet": (vision_resnet, [0]),
    "tokenizer_attribute": (tokenizer_attribute, ["the cat sat", "dog"]),
    "bert_class": (bert_class, ["the cat sat"]),
    "bert_proxy": (bert_proxy, ["the dog"]),
    "bert_instance": (bert_instance, ["on the mat"]),
    "pretrained": (pretrained, ["the mat"]),
    "classifier": (classifier, ["the cat sat on the mat"]),
    "scorer": (scorer, ["the cat sat", "the dog sat on the mat"]),
    "recurrent": (recurrent, [3]),
    "batchnorm": (batchnorm, [0]),
}
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    tmp = tmp_path_factory.mktemp("instances")
    out = save_in_subprocess(tmp, SCRIPT)
    return out, load_in_subprocess(tmp, out)


def _check(saved: tuple[Path, dict[str, list[str]]], name: str) -> str:
    out, got = saved
    assert got[name] == expected_outputs(out)[name]
    return (out / f"{name}.padl" / "pipeline.py").read_text()


def test_an_nn_sequential_instance(saved) -> None:
    source = _check(saved, "sequential")
    assert "model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))" in source


def test_an_instance_whose_init_does_not_store_its_argument(saved) -> None:
    assert "net = Net(5)" in _check(saved, "not_stored")


def test_an_instance_from_a_factory_function(saved) -> None:
    assert "made = make_model()" in _check(saved, "factory")


def test_an_instance_made_inline(saved) -> None:
    assert "nn.Sequential(nn.Linear(4, 2), nn.Sigmoid())" in _check(saved, "inline")


def test_an_instance_assigned_in_the_function_that_returns_the_pipeline(saved) -> None:
    source = _check(saved, "in_function")
    assert "width = 6" in source and "local_net = Net(width)" in source


@pytest.mark.parametrize("name", ["vision_vit", "vision_resnet"])
def test_vision_model_instances_from_configs(saved, name: str) -> None:
    assert "AutoModel.from_config(" in _check(saved, name)


def test_a_tokenizer_attribute_set_in_init_is_not_changed(saved) -> None:
    source = _check(saved, "tokenizer_attribute")
    assert "tokenizer_attribute.tokenizer" not in source


@pytest.mark.parametrize("name", ["bert_class", "bert_proxy", "bert_instance"])
def test_transformers_models_wrapped_as_class_proxy_or_instance(saved, name: str) -> None:
    _check(saved, name)


def test_a_model_from_a_pretrained_folder_is_rebuilt_from_its_saved_config(saved) -> None:
    source = _check(saved, "pretrained")
    assert (
        "BertModel(config=BertConfig.from_pretrained(verified(__file__, 'data/config')))" in source
    )


def test_a_bert_classifier_with_its_tokenizer_saved_in_the_artifact(saved) -> None:
    source = _check(saved, "classifier")
    assert "BertTokenizer.from_pretrained(verified(__file__, 'data/tokenizer'))" in source
    assert (saved[0] / "classifier.padl" / "data" / "tokenizer").is_dir()


def test_a_gpt2_scorer(saved) -> None:
    _check(saved, "scorer")


def test_an_lstm(saved) -> None:
    assert "lstm = nn.LSTM(4, 8, batch_first=True)" in _check(saved, "recurrent")


def test_batchnorm_momentum_changed_inside_a_numbered_submodule(saved) -> None:
    assert "backbone.features[0][1].momentum = 0.01" in _check(saved, "batchnorm")


REFUSED = """
from torch import nn
from padlc import transform

class Net(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.fc = nn.Linear(4, h)
    def forward(self, x):
        return self.fc(x)

def wrap(module):
    return transform(module)

hooked = Net(2)
hooked.fc.register_forward_hook(lambda *args: None)

REFUSED = {"unknown": wrap(Net(3)), "hooked": transform(hooked)}
"""


def test_instances_no_route_saves_are_refused_naming_object_site_and_fix(tmp_path: Path) -> None:
    errors = save_errors_in_subprocess(tmp_path, REFUSED)
    assert "a Net" in errors["unknown"] and "user.py:13" in errors["unknown"]
    assert "'h' is not stored" in errors["unknown"] and "transform(Net)(...)" in errors["unknown"]
    assert "hooks registered after construction" in errors["hooked"]
    assert not list((tmp_path / "refused").glob("*.padl"))


NOTEBOOK_CELLS = [
    "import torch\nimport padlc\nfrom torch import nn\nfrom padlc import batch, transform, unbatch",
    "class Net(nn.Module):\n    def __init__(self, h):\n        super().__init__()\n"
    "        self.fc = nn.Linear(2, h)\n    def forward(self, x):\n        return self.fc(x)",
    "torch.manual_seed(0)\nmodel = Net(3)",
    "p = transform(torch.tensor) >> batch >> transform(model) >> unbatch\n"
    "expected = p.infer_apply([1.0, 2.0])\npadlc.save(p, OUT)\nprint(expected.tolist())",
]


def test_an_instance_made_in_a_notebook_cell(tmp_path: Path) -> None:
    artifact = tmp_path / "cells.padl"
    expected = last_line_of_ipython_cells(tmp_path, [f"OUT = {str(artifact)!r}", *NOTEBOOK_CELLS])
    assert "model = Net(3)" in (artifact / "pipeline.py").read_text()
    load = f"import padlc\nprint(padlc.load({str(artifact)!r}).infer_apply([1.0, 2.0]).tolist())"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert run_python(["-c", load], cwd=elsewhere).strip() == expected
