"""The world outside storage: the clock, LiveKit's signatures and servers, and the tally of
credits charged (the HTTP server's metrics: `bind` points it at them)."""

from dependency_injector import containers, providers

from adapters.livekit.room_service import LiveKitRoomService
from adapters.livekit.webhook_verifier import LiveKitWebhookVerifier
from adapters.system_clock import SystemClock


class Untallied:
    """Where no metrics are kept (the CLI): the charges are told to no one."""

    def credits_charged(self, credits: int) -> None:
        pass


class OutsideContainer(containers.DeclarativeContainer):
    clock = providers.Singleton(SystemClock)
    charge_tally = providers.Singleton(Untallied)
    webhook_verifier = providers.Singleton(LiveKitWebhookVerifier)
    livekit_rooms = providers.Singleton(LiveKitRoomService)
