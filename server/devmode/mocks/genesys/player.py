"""Plays scripted conversations: one task per conversation, voice or messaging.

A new conversation waits until someone listens, so that its first line is not
lost: a voice conversation starts when a channel subscribes to its
transcription topic, a messaging one when a channel subscribes to its agent's
``v2.users.{id}.conversations`` topic. ``play`` (re)starts one at any time until
``end`` ends it (an ended conversation never plays again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server.devmode.mocks.genesys.config import MockGenesysConfig
from server.devmode.mocks.genesys.conversations import Conversation
from server.devmode.mocks.genesys.ending import end_conversation
from server.devmode.mocks.genesys.messaging import play_messaging
from server.devmode.mocks.genesys.notifications import TRANSCRIPTION_TOPIC, USER_CONVERSATIONS_TOPIC
from server.devmode.mocks.genesys.scripts import ScriptLibrary
from server.devmode.mocks.genesys.state import MockGenesysState
from server.devmode.mocks.genesys.transcription import play_voice

logger = logging.getLogger(__name__)


class ConversationPlayer:
    """Starts, restarts and stops the playback of scripted conversations."""

    def __init__(
        self, config: MockGenesysConfig, state: MockGenesysState, library: ScriptLibrary
    ) -> None:
        """Bind to one mock."""
        self.config = config
        self.state = state
        self.library = library
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def on_subscribed(self, topic: str) -> None:
        """A channel newly subscribed to ``topic``: start what was waiting for it."""
        if match := TRANSCRIPTION_TOPIC.fullmatch(topic):
            conversation = self.state.conversations.get(match.group(1))
            # A messaging conversation has no transcript: its transcription topic stays silent.
            if conversation is not None and conversation.media == "voice":
                self.ensure_started(conversation.id)
        elif match := USER_CONVERSATIONS_TOPIC.fullmatch(topic):
            for conversation in list(self.state.conversations.values()):
                if conversation.media == "message" and conversation.agent_user_id == match.group(1):
                    self.ensure_started(conversation.id)

    def ensure_started(self, conversation_id: str) -> None:
        """Start a conversation's playback unless it was started before (or ended)."""
        conversation = self.state.conversations.get(conversation_id)
        if conversation is None or conversation.playback_requested or conversation.ended:
            return
        self._start(conversation)

    async def play(self, conversation_id: str) -> bool:
        """(Re)play a conversation from the start; False if it does not exist or ended."""
        conversation = self.state.conversations.get(conversation_id)
        if conversation is None or conversation.ended:
            return False
        await self._cancel(conversation_id)
        self._start(conversation)
        return True

    async def end(self, conversation_id: str) -> Conversation | None:
        """Stop a conversation's script and end it on the platform (see :mod:`.ending`);
        None if it does not exist. Ending it again changes nothing."""
        conversation = self.state.conversations.get(conversation_id)
        if conversation is None:
            return None
        if not conversation.ended:
            await self._cancel(conversation_id)
            end_conversation(self.config, self.state, conversation)
        return conversation

    def is_playing(self, conversation_id: str) -> bool:
        """Whether a playback task is running for the conversation."""
        task = self._tasks.get(conversation_id)
        return task is not None and not task.done()

    async def shutdown(self) -> None:
        """Cancel every playback task and wait for them to finish."""
        for conversation_id in list(self._tasks):
            await self._cancel(conversation_id)

    def _start(self, conversation: Conversation) -> None:
        script = self.library.get(conversation.script_name)
        if script is None:  # pragma: no cover - conversations are made from known scripts
            logger.error(
                "conversation %s: unknown script %r", conversation.id, conversation.script_name
            )
            return
        conversation.playback_requested = True
        conversation.feed.reset()
        conversation.feed.set_status("playing")
        play = play_messaging if conversation.media == "message" else play_voice
        task = asyncio.create_task(
            play(self.config, self.state, conversation, script, self._pause),
            name=f"play-{conversation.id}",
        )
        self._tasks[conversation.id] = task
        task.add_done_callback(lambda t: self._finished(conversation.id, t))

    def _finished(self, conversation_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(conversation_id) is task:
            del self._tasks[conversation_id]
        if not task.cancelled() and task.exception() is not None:
            logger.error("playback of %s failed", conversation_id, exc_info=task.exception())

    async def _cancel(self, conversation_id: str) -> None:
        task = self._tasks.pop(conversation_id, None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _pause(self, script_ms: int) -> None:
        if script_ms > 0:
            await asyncio.sleep(script_ms / 1000 / self.config.playback_speed)
