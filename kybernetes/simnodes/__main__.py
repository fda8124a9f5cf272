"""`python -m kybernetes.simnodes ...` runs the `kyb sim-nodes` command on its own."""

from kybernetes.simnodes.cli import sim_nodes_command

if __name__ == "__main__":
    sim_nodes_command(prog_name="python -m kybernetes.simnodes")
