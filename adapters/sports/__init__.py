"""Sports score feeds: Polymarket's sports WebSocket (:mod:`.polymarket`, decoded by
:mod:`.wire`, source ``sports.polymarket``) and a generic JSON scoreboard poller with an ESPN
preset (:mod:`.scoreboard`, source ``sports.scoreboard``). Both produce
:class:`polybot.events.GameState` events; the feeds forward raw inputs, the decoders are pure."""
