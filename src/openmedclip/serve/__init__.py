"""Serving models to people: the REST service (:mod:`.api`) and the browser demo (:mod:`.demo`), on one shared
core (:mod:`.session`: models loaded once, label presets)."""
