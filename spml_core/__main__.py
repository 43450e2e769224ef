from spml_core.cli import main

raise SystemExit(main())
