// Initiates the replica set rs0 of the compose file once, then waits for a
// primary. Idempotent: on every later `docker compose up` it finds the set
// initiated and only waits. Run by the mongo-init service with mongosh
// against mongo-1.
const members = ["mongo-1:27017", "mongo-2:27017", "mongo-3:27017"];

function initiated() {
  try {
    rs.status();
    return true;
  } catch (e) {
    if (e.codeName === "NotYetInitialized" || e.code === 94) return false;
    throw e;
  }
}

if (!initiated()) {
  try {
    rs.initiate({
      _id: "rs0",
      members: members.map((host, i) => ({ _id: i, host: host })),
    });
    print("rs0: initiated with " + members.join(", "));
  } catch (e) {
    // Another mongo-init run won the race: fine.
    if (e.codeName !== "AlreadyInitialized" && e.code !== 23) throw e;
  }
} else {
  print("rs0: already initiated");
}

for (let i = 0; i < 120; i++) {
  let primary = null;
  try {
    primary = rs.status().members.find((m) => m.stateStr === "PRIMARY");
  } catch (e) {
    // not ready yet
  }
  if (primary) {
    // MongoDB 5+ already defaults to w:majority on a replica set without
    // arbiters; make it explicit for every client (the service's connection
    // string says w=majority too). Must run on the primary.
    const admin = new Mongo("mongodb://" + primary.name + "/?directConnection=true").getDB("admin");
    const res = admin.runCommand({ setDefaultRWConcern: 1, defaultWriteConcern: { w: "majority" } });
    if (!res.ok) throw new Error("setDefaultRWConcern: " + tojson(res));
    print("rs0: primary is " + primary.name + ", default write concern w:majority");
    quit(0);
  }
  sleep(1000);
}
print("rs0: no primary after 120 s");
quit(1);
