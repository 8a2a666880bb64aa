-- The example node table as skynet's own clustername.lua: the same nodes as
-- clustername.yaml beside it (a test keeps them equal). A Lua skynet node and a cppskynet
-- node (cluster.names_file: ../clustername.lua) read this one file. Each global is a
-- node: name = "host:port" (IPv6 as "[::1]:2528"), or false for a node that is down;
-- "__" keys are options. Reloadable: see docs/config.md, "The node table".
cluster1 = "127.0.0.1:2528"
cluster2 = "127.0.0.1:2529"
cluster3 = "127.0.0.1:2530"
__nowaiting = true
