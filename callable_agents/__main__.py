from callable_agents.cli import main

main()
