"""What every process shares: user errors, console progress, stop signals, file locks."""
