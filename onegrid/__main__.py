from onegrid.cli import main

raise SystemExit(main())
