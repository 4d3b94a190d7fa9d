from onegrid.cli.main import main

raise SystemExit(main())
