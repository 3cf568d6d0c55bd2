from rethinkgen.cli import main

raise SystemExit(main())
