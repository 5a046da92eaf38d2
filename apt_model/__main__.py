from apt_model.cli.main import main

main()
