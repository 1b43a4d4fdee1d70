"""The local emulated cloud: fake-gcs-server, the Pub/Sub and Firestore
emulators, the functions under functions-framework and the Eventarc bridge,
all on loopback, started and stopped by the PIDs recorded in a state folder.

One concern per module: :mod:`~localcloud.tools` finds the programs,
:mod:`~localcloud.processes` starts, polls and stops process groups,
:mod:`~localcloud.components` starts each component,
:mod:`~localcloud.clients` talks to the emulators through the Google client
libraries, :mod:`~localcloud.state` keeps the state folder,
:mod:`~localcloud.stack` is ``up``/``down``/``status``,
:mod:`~localcloud.bridge` is the Eventarc stand-in, and
:mod:`~localcloud.errors` holds the typed errors. Nothing here prints;
``fashionctl`` is the command line over it.

The names below are the package's API, re-exported for callers (the demo,
the benchmarks, the tests' fixtures); importing it loads no Google client
library.
"""

from localcloud.clients import (
    create_buckets,
    create_topic_and_subscription,
    publish_model_store,
    publisher_client,
    storage_client,
    subscriber_client,
)
from localcloud.components import (
    emulator_env,
    firestore_ready,
    install_npm_firestore,
    settings_env,
    start_bridge,
    start_firestore,
    start_firestore_npm,
    start_function,
    start_functions_framework,
    start_http_function,
    start_pubsub,
    start_storage,
)
from localcloud.defaults import (
    DEFAULT_FUNCTION_SOURCE,
    DEFAULT_FUNCTION_TARGET,
    DEFAULT_MODEL_STORE,
    DEFAULT_NODE_DIR,
    DEFAULT_STATE_DIR,
    HOST,
    PROJECT,
    REPO_ROOT,
)
from localcloud.errors import AlreadyRunning, StackError, StartFailed, ToolsMissing
from localcloud.processes import Proc, alive, free_port, http_answers, log_contains, log_tail, spawn, stop, wait_until
from localcloud.stack import (
    COMPONENTS,
    INFO_KEYS,
    ProcessStop,
    StackConfig,
    StackStatus,
    Started,
    Stopped,
    default_settings,
    down,
    parse_settings_overrides,
    status,
    up,
)
from localcloud.state import ENV_FILE, STATE_FILE, Ports, State, read_env_file, write_env_file
from localcloud.tools import FIRESTORE_KINDS, NPM_FIRESTORE, NPM_FIRESTORE_VERSION, SDK_ROOTS, Tools, choose_firestore, find_tools

__all__ = [
    "COMPONENTS",
    "DEFAULT_FUNCTION_SOURCE",
    "DEFAULT_FUNCTION_TARGET",
    "DEFAULT_MODEL_STORE",
    "DEFAULT_NODE_DIR",
    "DEFAULT_STATE_DIR",
    "ENV_FILE",
    "FIRESTORE_KINDS",
    "HOST",
    "INFO_KEYS",
    "NPM_FIRESTORE",
    "NPM_FIRESTORE_VERSION",
    "PROJECT",
    "REPO_ROOT",
    "SDK_ROOTS",
    "STATE_FILE",
    "AlreadyRunning",
    "Ports",
    "Proc",
    "ProcessStop",
    "StackConfig",
    "StackError",
    "StackStatus",
    "StartFailed",
    "Started",
    "State",
    "Stopped",
    "Tools",
    "ToolsMissing",
    "alive",
    "choose_firestore",
    "create_buckets",
    "create_topic_and_subscription",
    "default_settings",
    "down",
    "emulator_env",
    "find_tools",
    "firestore_ready",
    "free_port",
    "http_answers",
    "install_npm_firestore",
    "log_contains",
    "log_tail",
    "parse_settings_overrides",
    "publish_model_store",
    "publisher_client",
    "read_env_file",
    "settings_env",
    "spawn",
    "start_bridge",
    "start_firestore",
    "start_firestore_npm",
    "start_function",
    "start_functions_framework",
    "start_http_function",
    "start_pubsub",
    "start_storage",
    "status",
    "stop",
    "storage_client",
    "subscriber_client",
    "up",
    "wait_until",
    "write_env_file",
]
