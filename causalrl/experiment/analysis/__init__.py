"""The analysis room: finding and grouping finished runs, reports (IQM tables with stratified
bootstrap CIs, curves, performance profiles, probability of improvement), leaderboards of paired
differences, and graph pictures of runs. It reads run directories; it runs nothing."""
