"""The README's code runs exactly as written and says what it claims."""
import math
import re
from pathlib import Path

import torch
from torch.distributions import Categorical

import scgrad as sg

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    """The README's ```python blocks, in order: [quickstart, custom estimator]."""
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_quickstart_is_short_and_gives_the_stated_gradients(capsys):
    quickstart = python_blocks()[0]
    assert len(quickstart.strip().splitlines()) <= 15
    torch.manual_seed(0)
    scope = {}
    exec(compile(quickstart, "README quickstart", "exec"), scope)
    # Exact: d/dlogits E[payoff[k]] = p * (payoff - E payoff) = [-1/3, 0, 1/3]; d/dmu = 2(mu - 2).
    # Score-function noise at 10,000 samples: standard error ≈ 0.02 per entry (cost variance
    # ≈ 18.7); the tolerance 0.1 is 5 standard errors (false-failure rate < 1e-5 per entry).
    assert torch.allclose(scope["logits"].grad, torch.tensor([-1 / 3, 0.0, 1 / 3]), atol=0.1)
    assert abs(scope["mu"].grad.item() + 4.0) < 0.1  # pathwise: standard error 0.02
    assert sorted(scope["g"].nx.edges) == [("k", "loss"), ("x", "loss")]
    assert "tensor(" in capsys.readouterr().out


def test_custom_estimator_is_short_and_unbiased():
    block = python_blocks()[1]
    assert len(block.strip().splitlines()) <= 20
    scope = {}
    exec(compile(block, "README estimator", "exec"), scope)
    estimator = scope["LeaveOthersOutScore"]()
    logits = torch.tensor([0.3, -0.2, 0.1], requires_grad=True)
    payoff = torch.tensor([1.0, 4.0, 2.0])
    probs = torch.softmax(logits, 0)
    exact, = torch.autograd.grad((probs * payoff).sum(), logits)

    def estimate(n):
        with sg.Graph() as g:
            k = g.sample("k", Categorical(logits=logits.expand(n, 3)), estimator=estimator)
            g.cost("c", payoff[k])
        grad, = torch.autograd.grad(g.surrogate(), logits)
        return grad

    torch.manual_seed(1)
    samples = torch.stack([estimate(8) for _ in range(4000)])
    mean, se = samples.mean(0), samples.std(0) / math.sqrt(len(samples))
    # |z| < 4.5 per entry: false-failure rate < 2e-5 for 3 entries (CLT at 4000 runs).
    assert ((mean - exact).abs() / se).max() < 4.5
    # Negative control: without the baseline, the same estimator's variance is larger.
    plain = []
    for _ in range(500):
        with sg.Graph() as g:
            k = g.sample("k", Categorical(logits=logits.expand(8, 3)))
            g.cost("c", payoff[k])
        plain.append(torch.autograd.grad(g.surrogate(), logits)[0])
    assert torch.stack(plain).var(0).sum() > 2 * samples[:500].var(0).sum()
