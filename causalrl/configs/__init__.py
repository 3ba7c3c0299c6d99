"""Named presets shipped with the package (``causalrl run NAME``); see docs/presets.md."""
