from segsync.cli import main

main()
