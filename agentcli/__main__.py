from agentcli.cli.first import main

main()
