module sales-forecast.local/pause

go 1.22
