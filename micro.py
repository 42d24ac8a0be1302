import sys, time, requests, warnings
warnings.simplefilter("ignore")
url=open("/tmp/ds-h/work/url").read()
s=requests.Session(); s.trust_env=False; s.verify=False
PART=int(sys.argv[2])*1024*1024; TOTAL=1024*1024*1024
buf=bytearray(PART); view=memoryview(buf)
mode=sys.argv[1]
t=time.perf_counter(); c=time.process_time()
for off in range(0, TOTAL, PART):
    h={"Range":f"bytes={off}-{off+PART-1}"}
    if mode=="content":
        r=s.get(url,headers=h); d=r.content; view[:len(d)]=d
    elif mode=="read":
        r=s.get(url,headers=h,stream=True); d=r.raw.read(PART, decode_content=False); view[:len(d)]=d; r.raw.release_conn()
    else:
        r=s.get(url,headers=h,stream=True); fp=r.raw._fp; got=0
        while got<PART:
            n=fp.readinto(view[got:]); 
            if not n: break
            got+=n
        r.raw.release_conn()
print(mode, PART>>20, "wall %.2f cpu %.2f"%(time.perf_counter()-t, time.process_time()-c))
