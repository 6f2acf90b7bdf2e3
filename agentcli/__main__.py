from agentcli.cli.app import main

main()
