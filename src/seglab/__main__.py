from seglab.cli import main

main()
