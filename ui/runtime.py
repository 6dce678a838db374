"""Access to the one pipeline runtime of this Streamlit server process.

Guarantees: ``get_runtime()`` returns the same ``Runtime`` to every browser session (``st.cache_resource``);
it is started once, on first load, and stopped when the cache releases it (``st.cache_resource.clear()``)
or the process exits. Streamlit does not release cached resources on Ctrl+C/SIGTERM: its handler only
ends the server loop, and the stop then runs from the runtime's interpreter-exit hook, before Python
joins worker threads (see ``pipeline.runtime.at_exit``).
A configuration error is shown as a sentence and stops the page; it never becomes a traceback.
"""

from __future__ import annotations

import logging

import streamlit as st

from pipeline.config import ConfigError, Settings
from pipeline.runtime import Runtime, configure_logging
from ui import format as fmt

log = logging.getLogger(__name__)


def _release(runtime: Runtime) -> None:
    runtime.stop()


@st.cache_resource(show_spinner="Starting the pipeline (Kafka and MongoDB)…", on_release=_release)
def _runtime() -> Runtime:
    configure_logging()
    return Runtime(Settings.load()).start()


def get_runtime() -> Runtime:
    try:
        return _runtime()
    except ConfigError as exc:
        st.error(f"Configuration error: {fmt.literal(exc)}")  # quotes the value as typed: literally
        st.info("Fix the value in the environment or in `.streamlit/secrets.toml`, then reload the page.")
        st.stop()


def show_start_error(runtime: Runtime) -> None:
    """If the runtime could not start, say why and what to do, with a retry button; then stop the page."""
    if runtime.state != "error":
        return
    st.error(f"The pipeline could not start. {runtime.error}")
    if runtime.mode == "embedded":
        st.info(
            "The embedded servers run from the data folder "
            f"`{runtime.settings.data_dir}`. Their logs (kafka.log, mongodb.log) are there."
        )
    else:
        st.info(
            "Check that the servers named by KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI are running and "
            "reachable from this machine."
        )
    if st.button("Try again", type="primary"):
        runtime.start()
        st.rerun()
    st.stop()
