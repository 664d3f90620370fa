// ZooKeeper's own Java client library (the one zkCli.sh is built on)
// against a ZooKeeper-protocol port, for what zkCli.sh has no command for:
// a committed multi, one refused as a whole, the Transaction builder and
// multiRead; then one of two watchers on a path removed (the Java client
// sends checkWatches for that) while the other still fires.
// Run by scripts/zkcli-tour.sh as a single source file:
//   java -cp /usr/share/java/zookeeper.jar scripts/zk-java/JavaClient.java HOST:PORT
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;

public class JavaClient {
    static final List<org.apache.zookeeper.data.ACL> OPEN = ZooDefs.Ids.OPEN_ACL_UNSAFE;

    static String describe(OpResult r) {
        if (r instanceof OpResult.CreateResult) {
            return "create " + ((OpResult.CreateResult) r).getPath();
        } else if (r instanceof OpResult.SetDataResult) {
            return "setData version=" + ((OpResult.SetDataResult) r).getStat().getVersion();
        } else if (r instanceof OpResult.CheckResult) {
            return "check ok";
        } else if (r instanceof OpResult.DeleteResult) {
            return "delete ok";
        } else if (r instanceof OpResult.GetDataResult) {
            return "getData " + new String(((OpResult.GetDataResult) r).getData());
        } else if (r instanceof OpResult.GetChildrenResult) {
            return "getChildren " + ((OpResult.GetChildrenResult) r).getChildren();
        } else if (r instanceof OpResult.ErrorResult) {
            return "error " + KeeperException.Code.get(((OpResult.ErrorResult) r).getErr());
        }
        return r.toString();
    }

    static void print(String what, List<OpResult> results) {
        System.out.println(what + ":");
        for (OpResult r : results) {
            System.out.println("  " + describe(r));
        }
    }

    public static void main(String[] args) throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(args[0], 10000, e -> {
            if (e.getState() == Watcher.Event.KeeperState.SyncConnected) {
                connected.countDown();
            }
        });
        if (!connected.await(20, TimeUnit.SECONDS)) {
            throw new IllegalStateException("no session with " + args[0]);
        }
        print("multi (create, create, setData, check)", zk.multi(Arrays.asList(
            Op.create("/tx", "t0".getBytes(), OPEN, CreateMode.PERSISTENT),
            Op.create("/tx/a", "a".getBytes(), OPEN, CreateMode.PERSISTENT),
            Op.setData("/tx", "t1".getBytes(), 0),
            Op.check("/tx", 1))));
        try {
            zk.multi(Arrays.asList(
                Op.create("/tx/b", "b".getBytes(), OPEN, CreateMode.PERSISTENT),
                Op.delete("/tx/none", -1)));
            System.out.println("a multi with a failing op was applied: WRONG");
        } catch (KeeperException e) {
            print("multi (create /tx/b, delete /tx/none) refused with " + e.code(), e.getResults());
        }
        System.out.println("/tx/b after the refused multi: "
            + (zk.exists("/tx/b", false) == null ? "absent" : "PRESENT (wrong)"));
        print("transaction (create /tx/c, delete /tx/a)", zk.transaction()
            .create("/tx/c", "c".getBytes(), OPEN, CreateMode.PERSISTENT)
            .delete("/tx/a", -1)
            .commit());
        print("multiRead (getData /tx, getChildren /tx)", zk.multi(Arrays.asList(
            Op.getData("/tx"),
            Op.getChildren("/tx"))));

        CountDownLatch kept = new CountDownLatch(1);
        // A removed watcher hears of its removal (DataWatchRemoved), from
        // the client itself, and nothing after it.
        Watcher removed = e -> System.out.println("the removed watcher got " + e.getType()
            + (e.getType() == Watcher.Event.EventType.DataWatchRemoved ? "" : " (WRONG)"));
        Watcher other = e -> {
            if (e.getType() == Watcher.Event.EventType.NodeDataChanged) {
                kept.countDown();
            }
        };
        zk.getData("/tx", removed, null);
        zk.getData("/tx", other, null);
        zk.removeWatches("/tx", removed, Watcher.WatcherType.Data, false);
        System.out.println("removeWatches of one of two data watchers on /tx: ok");
        try {
            zk.removeWatches("/tx", removed, Watcher.WatcherType.Data, false);
            System.out.println("removing it again: ok (WRONG)");
        } catch (KeeperException e) {
            System.out.println("removing it again: " + e.code());
        }
        zk.setData("/tx", "t2".getBytes(), -1);
        System.out.println("setData /tx: the other watcher "
            + (kept.await(10, TimeUnit.SECONDS) ? "fired" : "did not fire (WRONG)"));
        Thread.sleep(500); // room for a wrong event from the removed one
        zk.close();
    }
}
