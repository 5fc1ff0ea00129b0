"""What a budget raises: at a call it refuses, and at configuration time."""

from __future__ import annotations

from decimal import Decimal


def format_usd(amount: Decimal) -> str:
    """`$1.2345`; amounts under a cent keep their significant digits (`$0.000325`)."""
    if amount != 0 and abs(amount) < Decimal("0.01"):
        return f"${amount.normalize():f}"
    return f"${amount:.4f}"


class BudgetExceeded(Exception):
    """An LLM call refused by a budget before any request left the process.

    `scope` is "task", "customer" or "block"; `subject` the task id or customer id the spend is
    counted for (None for a block); `limit_usd` and `spent_usd` exact Decimals; `model` the model
    the call asked for; `worst_case_usd` set when the pre-flight estimate refused the call.
    """

    def __init__(
        self,
        *,
        scope: str,
        subject: str | None,
        limit_usd: Decimal,
        spent_usd: Decimal,
        model: str | None,
        name: str | None = None,
        worst_case_usd: Decimal | None = None,
        in_stream: bool = False,
    ) -> None:
        self.scope = scope
        self.subject = subject
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.model = model
        self.name = name
        self.worst_case_usd = worst_case_usd
        self.in_stream = in_stream
        super().__init__(self._message())

    @property
    def summary(self) -> str:
        """Which budget, its limit and the spend, e.g.
        `task budget (task 4f1c) exceeded: limit $1.0000, spent $1.0200`."""
        who = f"{self.scope} budget"
        if self.name:
            who += f" {self.name!r}"
        if self.subject is not None:
            who += f" ({self.scope} {self.subject})"
        spent = f"limit {format_usd(self.limit_usd)}, spent {format_usd(self.spent_usd)}"
        if self.worst_case_usd is not None and not self.in_stream:
            model = f"the {self.model} call" if self.model else "the call"
            return (
                f"{who} would be exceeded: {spent}, worst case of {model} {format_usd(self.worst_case_usd)}"
            )
        return f"{who} exceeded: {spent}"

    def _message(self) -> str:
        model = f"the {self.model} call" if self.model else "the call"
        if self.in_stream:
            return f"{self.summary}; {model} was stopped mid-stream (abort_streams=True)"
        if self.worst_case_usd is not None:
            return f"{self.summary}; refused before sending"
        return f"{self.summary}; {model} was refused before sending"


class BudgetConfigError(ValueError):
    """A budget declared with a bad value: names where (file and key, or the argument) and the value."""
