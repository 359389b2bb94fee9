"""``python -m demo.pickup``: serve Pickup (see demo.pickup.app.Config for the environment)."""

from demo.pickup.server import main

main()
