"""The world outside storage: the clock, and LiveKit's signatures and servers."""

from dependency_injector import containers, providers

from adapters.livekit.room_service import LiveKitRoomService
from adapters.livekit.webhook_verifier import LiveKitWebhookVerifier
from adapters.system_clock import SystemClock


class OutsideContainer(containers.DeclarativeContainer):
    clock = providers.Singleton(SystemClock)
    webhook_verifier = providers.Singleton(LiveKitWebhookVerifier)
    livekit_rooms = providers.Singleton(LiveKitRoomService)
