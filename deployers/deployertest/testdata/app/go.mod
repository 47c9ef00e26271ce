module immunity.test/deployertest/app

go 1.22
