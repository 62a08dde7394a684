"""A Genesys Cloud simulator that serves the real API paths from a scenario file."""

from wfm_publish_local.simulator.loading import ScenarioError, load_scenario, parse_scenario
from wfm_publish_local.simulator.model import GenesysSimulator
from wfm_publish_local.simulator.scenario import Scenario
from wfm_publish_local.simulator.server import SimulatorServer, serve_forever
from wfm_publish_local.simulator.transport import InProcessAdapter
from wfm_publish_local.simulator.wire import SimResponse

__all__ = [
    "GenesysSimulator",
    "InProcessAdapter",
    "Scenario",
    "ScenarioError",
    "SimResponse",
    "SimulatorServer",
    "load_scenario",
    "parse_scenario",
    "serve_forever",
]
