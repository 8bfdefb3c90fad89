from appgw.cli.main import main

main()
