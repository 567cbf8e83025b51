"""The project: the config (sources.yaml) and the journey map it names, read and checked once.

`load_project(path)` validates sources.yaml, then the journey map against the sources and the
events columns that config defines, so a rule naming an unknown source or column stops the run
before any work; then its `privacy:` block (transforms/privacy.py: salt present and long enough,
every named column known). The result is cached per file (path and modification time): every
consumer in one process shares one parse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from transforms.journey_map import JourneyMap, Vocabulary, load_journey_map
from transforms.privacy import Privacy, PrivacyPlan, plan_privacy, read_privacy
from transforms.sources import ProjectConfig, load_config


@dataclass(frozen=True)
class Project:
    config: ProjectConfig
    journey_map: JourneyMap
    # what `events` pseudonymises and withholds (off without a `privacy:` block)
    privacy: PrivacyPlan = field(default_factory=lambda: PrivacyPlan(Privacy()))

    @property
    def event_sources(self) -> list[str]:
        """Names of the sources whose records become events, in config order."""
        return [s.name for s in self.config.sources.values() if s.event is not None]


def vocabulary(cfg: ProjectConfig) -> Vocabulary:
    """What journey-map rules may name in this project."""
    return Vocabulary(sources=tuple(s.name for s in cfg.sources.values() if s.event),
                      columns=cfg.events.all_columns)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# path -> (config mtime, journey map mtime, project)
_CACHE: dict[str, tuple[float, float, Project]] = {}


def load_project(config_path: str | Path) -> Project:
    """Read and validate sources.yaml and its journey map (cached while neither file changes)."""
    path = Path(config_path).expanduser().resolve()
    hit = _CACHE.get(str(path))
    if hit and hit[0] == _mtime(path) and hit[1] == _mtime(hit[2].config.journey_map):
        return hit[2]
    cfg_mtime = _mtime(path)
    cfg = load_config(path)
    map_mtime = _mtime(cfg.journey_map)
    journey_map = load_journey_map(cfg.journey_map, vocabulary(cfg))
    privacy = plan_privacy(read_privacy(path), cfg, journey_map)
    project = Project(cfg, journey_map, privacy)
    _CACHE[str(path)] = (cfg_mtime, map_mtime, project)
    return project
