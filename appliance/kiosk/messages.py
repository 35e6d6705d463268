"""The kiosk's messages: each says what just happened (past tense) and carries plain data.

Screens post them and the app decides what follows (which screen, which agent call), so a
screen never talks to the agent and never knows which screen comes next.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from appliance.control import ImageView, ResultView


@dataclass
class VisitorArrived(Message):
    """Someone tapped the attract screen."""


@dataclass
class LanguageChosen(Message):
    """The visitor tapped the language button; `language` is the code to speak now."""

    language: str


@dataclass
class ImagePicked(Message):
    image: ImageView


@dataclass
class DrivePicked(Message):
    image: ImageView
    drive: str  # a drive uid, or "auto"


@dataclass
class BurnStarted(Message):
    job_id: str
    drive: str
    image: ImageView


@dataclass
class BurnRefused(Message):
    code: str
    message: str


@dataclass
class BurnFinished(Message):
    result: ResultView


@dataclass
class ResultAcknowledged(Message):
    """The visitor left the result screen; `retry` when they want another disc of the image."""

    retry: bool
    image: ImageView | None = None


@dataclass
class OperatorRequested(Message):
    pass


@dataclass
class PinEntered(Message):
    pin: str


@dataclass
class OperatorUnlocked(Message):
    pass


@dataclass
class OperatorCommanded(Message):
    """An operator tapped an action; `cmd` and `args` are a control-socket request."""

    cmd: str
    drive: str | None = None
    name: str | None = None
