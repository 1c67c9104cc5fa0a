from facegate.cli.main import app

app(prog_name="facegate")
