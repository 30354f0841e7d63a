"""Where the worker puts the files it publishes in the filestore.

    runs/<run_id>/<execution_id>/<output>[/<index>]/<name>              (execution outputs)
    triggers/<deployment_id>/<step_id>/<event_id>/<output>/<name>       (files of a new run)

Ids and output names are used as they are and must each be one valid key segment (else
InvalidInput naming the field). <name> is the file name an action chose: it goes through the
kit's `encode_segment`, so a name with spaces, unicode or a leading dot still gives a valid key;
the FileRef beside the key keeps the name itself (inputs are restored under it).
"""

from __future__ import annotations

from ryax_kit.filestore import InvalidKey, check_key, encode_segment

from ..domain.errors import InvalidInput
from ..domain.model import StepRef, safe_file_name


def _plain(text: str, what: str) -> str:
    if "/" in text:
        raise InvalidInput(what, f"{text!r} cannot be used in a filestore key: it has a '/'")
    try:
        return check_key(text)
    except InvalidKey as error:
        raise InvalidInput(
            what, f"{text!r} cannot be used in a filestore key: {error.reason}"
        ) from None


def _name(name: str) -> str:
    return encode_segment(safe_file_name(name))


class FilestorePlacement:
    """The worker's FilePlacement for the kit's key rule."""

    def output_key(
        self, run_id: str, execution_id: str, output: str, name: str, index: int | None = None
    ) -> str:
        parts = [
            "runs",
            _plain(run_id, "run_id"),
            _plain(execution_id, "execution_id"),
            _plain(output, "output"),
        ]
        if index is not None:
            parts.append(str(index))
        parts.append(_name(name))
        return "/".join(parts)

    def trigger_output_key(self, ref: StepRef, event_id: str, output: str, name: str) -> str:
        return "/".join(
            [
                "triggers",
                _plain(ref.deployment_id, "deployment_id"),
                _plain(ref.step_id, "step_id"),
                _plain(event_id, "event_id"),
                _plain(output, "output"),
                _name(name),
            ]
        )
