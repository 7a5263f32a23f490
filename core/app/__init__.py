"""The command line and what only it uses: `lamina` and its commands, run configs, output
folders, learning curves, text generation and printing from plugins."""
