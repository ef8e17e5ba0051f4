from throwaway.cli import main

main()
