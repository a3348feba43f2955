"""What a search needs before its first trial: a search space that names real keys, and a sweep folder.

Sweepers apply ``hydra.sweeper.params`` to each job only as it is launched, so a mistyped key
(``model.hiden_size``) would fail the first trial, after the study has started, with a page of
composition errors. :class:`SweepSetup` is a Hydra callback (``hydra.callbacks`` in
conf/hparams_search/*.yaml) that checks every key of the search space against the composed config
first, and ends the multirun with one ``error: ...`` line.
"""

import difflib
import time
from pathlib import Path
from typing import Any

from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from seqexp.app.cli import exit_with_user_error
from seqexp.app.run_folder import release_folder
from seqexp.errors import ConfigError, first_line

_ABSENT = object()


class SweepSetup(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            expand_group_globs(config)
            check_search_space(config)
        except ConfigError as error:
            # Hydra turns a callback's exceptions into warnings and carries on; only an exit stops it.
            release_folder(Path(config.hydra.sweep.dir))  # a refused search leaves no folder behind
            exit_with_user_error(error)
        # An Optuna study kept in SQLite under the sweep folder is opened before the launcher would
        # create that folder.
        Path(config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)
        try:
            prepare_storage(OmegaConf.select(config, "hydra.sweeper.storage"))
        except ConfigError as error:
            release_folder(Path(config.hydra.sweep.dir))
            exit_with_user_error(error)


def prepare_storage(url: object, attempts: int = 10) -> None:
    """Create Optuna's tables in the study's database before the sweeper opens it.

    Workers that feed one study start together, and the first use of an empty database creates the
    tables: two at once collide (on PostgreSQL a duplicate type, on SQLite a table that already exists),
    and the loser would end before its first trial. Here the loser tries again once the winner is done.
    A database that cannot be opened is one line naming the URL."""
    if not isinstance(url, str) or not url:
        return  # a study in memory: nothing to share
    import optuna

    for attempt in range(attempts):
        try:
            optuna.storages.RDBStorage(url)
            return
        except Exception as error:  # a bad URL, an unreachable server, a missing driver: many kinds
            if attempt < attempts - 1 and _tables_collided(error):
                time.sleep(0.2 * (attempt + 1))  # another worker is creating the tables
                continue
            raise ConfigError(
                f"hydra.sweeper.storage={url!r} cannot be opened: {first_line(error)}"
            ) from None


def _tables_collided(error: Exception) -> bool:
    """Whether creating Optuna's tables failed because another worker was creating them at that moment.

    PostgreSQL says so with a duplicate key or object (IntegrityError, ProgrammingError); SQLite says
    ``table ... already exists`` as an OperationalError, the class that also means an unreachable
    server or a file that cannot be opened, which no retry mends."""
    import sqlalchemy.exc

    if isinstance(error, sqlalchemy.exc.IntegrityError | sqlalchemy.exc.ProgrammingError):
        return True
    return isinstance(error, sqlalchemy.exc.OperationalError) and "already exists" in str(error)


def check_search_space(config: DictConfig) -> None:
    """Raise ConfigError for the first key of ``hydra.sweeper.params`` that the config does not have.

    A key is known when it is a config group (then each of its choices must be an option of that
    group) or a key of the composed config; ``+key`` adds a new key and is not checked.
    """
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    for key, value in params.items():
        where = f"hydra.sweeper.params: {key}"
        if isinstance(value, DictConfig):
            raise ConfigError(f"{where} holds a mapping: give a sweep such as choice(...) or interval(...)")
        try:
            (override,) = OverridesParser.create().parse_overrides([f"{key}={value}"])
        except Exception as error:  # Hydra's parse errors: the first line says what is wrong
            raise ConfigError(f"{where}: {first_line(error)}") from None
        name = override.key_or_group
        if override.is_add() or override.is_force_add():
            continue
        if name in config.hydra.runtime.choices:
            if override.is_sweep_override():
                _check_group_options(config, name, list(override.sweep_string_iterator()))
            else:
                _check_group_options(config, name, [override.get_value_element_as_str()])
        elif OmegaConf.select(config, name, default=_ABSENT) is _ABSENT:
            raise ConfigError(f"{where} is not a key of the configuration{_suggestion(config, name)}")


def expand_group_globs(config: DictConfig) -> None:
    """Turn ``model: glob(*)`` in ``hydra.sweeper.params`` into ``choice(gru, lstm, ...)`` of the group's
    options, in place: Hydra's basic sweeper globs config groups, the Optuna sweeper does not. So a search
    space that says ``glob(*)`` takes in a cell added as conf/model/<name>.yaml with no other change."""
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    for key, value in list(params.items()):
        try:
            (override,) = OverridesParser.create().parse_overrides([f"{key}={value}"])
        except Exception:  # not a valid override: check_search_space names the problem
            continue
        group = override.key_or_group
        # Hydra's annotation of value() leaves out Glob, which it returns for glob(...).
        parsed: object = override.value()
        if isinstance(parsed, Glob) and group in config.hydra.runtime.choices:
            chosen = parsed.filter(_group_options(config, group))
            if not chosen:
                raise ConfigError(
                    f"hydra.sweeper.params: {key}={value} matches no option of the {group} group"
                )
            with read_write(config.hydra):  # Hydra's own section is read-only once composed
                params[key] = f"choice({', '.join(chosen)})"


def _group_options(config: DictConfig, group: str) -> list[str]:
    """The options of ``group`` as this command sees them, ``hydra.searchpath`` additions included."""
    overrides = [*config.hydra.overrides.hydra, *config.hydra.overrides.task]
    loader = GlobalHydra.instance().config_loader()
    return loader.get_group_options(group, config_name=config.hydra.job.config_name, overrides=overrides)


def _check_group_options(config: DictConfig, group: str, chosen: list[str]) -> None:
    options = _group_options(config, group)
    for option in chosen:
        if option not in options:
            raise ConfigError(
                f"hydra.sweeper.params: {group}={option} is not an option of the {group} group "
                f"(options: {', '.join(options)})"
            )


def _suggestion(config: DictConfig, name: str) -> str:
    """``; did you mean model.hidden_size?`` when a key of the same parent is close to ``name``."""
    parent, _, leaf = name.rpartition(".")
    node = OmegaConf.select(config, parent) if parent else config
    if not isinstance(node, DictConfig):
        return ""
    close = difflib.get_close_matches(leaf, [str(k) for k in node], n=1)
    return f"; did you mean {parent + '.' if parent else ''}{close[0]}?" if close else ""
