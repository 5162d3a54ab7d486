from sda_gui.cli import main

raise SystemExit(main())
